package twilio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/message"
)

// defaultMaxMediaSize is Twilio's own MMS limit (5 MB), used when the
// options set none.
const defaultMaxMediaSize = 5 << 20

// maxMedia bounds NumMedia: Twilio sends at most 10.
const maxMedia = 10

// errMediaTooLarge marks a medium over MaxMediaSize: kept as a URL, not
// stored, and not a reason to ask Twilio to retry.
// errMediaGone: Twilio answered a 4xx for the medium; fetching again will
// not help.
var errMediaGone = errors.New("media not available")

var errMediaTooLarge = errors.New("media larger than the limit")

// mediaAllowed reports whether contentType matches one of patterns
// ("image/*", "application/pdf"); no patterns allows everything.
func mediaAllowed(contentType string, patterns []string) bool {
	if len(patterns) == 0 {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "*/*" || p == "*" || p == mt {
			return true
		}
		if pre, ok := strings.CutSuffix(p, "/*"); ok && strings.HasPrefix(mt, pre+"/") {
			return true
		}
	}
	return false
}

// fetchMedia turns an MMS's MediaUrlN/MediaContentTypeN into attachments.
// With a blob store each allowed medium is fetched with the account's
// credentials and stored (URL = the blob reference); without one, or when
// a medium is larger than MaxMediaSize, Twilio's URL is kept. Disallowed
// types are left out and noted in the returned extras. An error means a
// medium could not be fetched: the caller answers 5xx so Twilio retries.
func (c *Connector) fetchMedia(ctx context.Context, f url.Values) ([]message.Attachment, map[string]string, error) {
	n, _ := strconv.Atoi(f.Get("NumMedia"))
	n = min(max(n, 0), maxMedia)
	var atts []message.Attachment
	notes := map[string]string{}
	for i := range n {
		u := f.Get("MediaUrl" + strconv.Itoa(i))
		ct := f.Get("MediaContentType" + strconv.Itoa(i))
		if u == "" {
			continue
		}
		if !mediaAllowed(ct, c.opt.MediaTypes) {
			notes["media_"+strconv.Itoa(i)+"_skipped"] = "content type " + ct + " is not allowed"
			continue
		}
		a := message.Attachment{Name: mediaName(u, ct, i), ContentType: ct, URL: u}
		if c.opt.Blobs != nil {
			ref, size, err := c.storeMedia(ctx, u)
			switch {
			case err == nil:
				a.URL, a.Size = ref, size
			case errors.Is(err, errMediaTooLarge):
				notes["media_"+strconv.Itoa(i)+"_not_stored"] = fmt.Sprintf("too large to store (limit %d bytes); kept as Twilio URL", c.maxMediaSize())
			case errors.Is(err, errMediaGone):
				// Asking again will not help (deleted media, refused
				// credentials): the text must not be lost for it.
				notes["media_"+strconv.Itoa(i)+"_not_stored"] = err.Error() + "; kept as Twilio URL"
			default:
				return nil, nil, fmt.Errorf("media %d: %w", i, err)
			}
		}
		atts = append(atts, a)
	}
	if len(notes) == 0 {
		notes = nil
	}
	return atts, notes, nil
}

func (c *Connector) maxMediaSize() int64 {
	if c.opt.MaxMediaSize > 0 {
		return c.opt.MaxMediaSize
	}
	return defaultMaxMediaSize
}

// storeMedia downloads one medium and puts it in the blob store. Twilio
// answers a media URL with a redirect to its media host; the client follows
// it without the account credentials (mediaClient).
func (c *Connector) storeMedia(ctx context.Context, rawURL string) (string, int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", 0, fmt.Errorf("media url %q is not an http(s) URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", 0, fmt.Errorf("media request: %w", err)
	}
	req.SetBasicAuth(c.opt.AccountSID, c.opt.AuthToken)
	resp, err := c.mediaClient().Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("fetch media: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return "", 0, fmt.Errorf("fetch media: HTTP %d: %w", resp.StatusCode, errMediaGone)
		}
		return "", 0, fmt.Errorf("fetch media: HTTP %d", resp.StatusCode)
	}
	limit := c.maxMediaSize()
	if resp.ContentLength > limit {
		return "", 0, errMediaTooLarge
	}
	// Buffered (at most limit+1 bytes) so that a too-large medium leaves
	// nothing half-stored behind.
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return "", 0, fmt.Errorf("read media: %w", err)
	}
	if int64(len(data)) > limit {
		return "", 0, errMediaTooLarge
	}
	ref, size, err := c.opt.Blobs.Put(bytes.NewReader(data))
	if errors.Is(err, blob.ErrTooLarge) {
		// The store's own limit is below MaxMediaSize: a retry cannot
		// help, so it is kept as Twilio's URL like any too-large medium.
		return "", 0, errMediaTooLarge
	}
	if err != nil {
		return "", 0, fmt.Errorf("store media: %w", err)
	}
	return ref, size, nil
}

// mediaName is a file name for medium i: Twilio's URLs end in the media
// SID, so the extension comes from the content type.
func mediaName(rawURL, ct string, i int) string {
	base := "media" + strconv.Itoa(i)
	if u, err := url.Parse(rawURL); err == nil && path.Base(u.Path) != "." && path.Base(u.Path) != "/" {
		base = path.Base(u.Path)
	}
	if path.Ext(base) == "" {
		if exts, err := mime.ExtensionsByType(ct); err == nil && len(exts) > 0 {
			base += exts[0]
		}
	}
	return base
}

// mediaClient is opt.HTTPClient, except that a redirect to another origin
// (scheme, host or port) goes without the Authorization header: net/http
// keeps it for the same host name on another port, and the account's
// credentials belong to Twilio's API only; the redirect target is signed.
func (c *Connector) mediaClient() *http.Client {
	hc := *c.opt.HTTPClient
	prev := hc.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if o := via[0].URL; req.URL.Scheme != o.Scheme || req.URL.Host != o.Host {
			req.Header.Del("Authorization")
		}
		if prev != nil {
			return prev(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &hc
}
