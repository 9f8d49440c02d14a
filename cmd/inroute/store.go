package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/system"
)

const storeUsage = `Usage: inroute store SUBCOMMAND [flags] [ARGS]

Admin tools for the store (the configured SQLite file or PostgreSQL database):

  find VALUE           contacts with this e-mail, phone (any format) or user id
  merge INTO FROM      make contact FROM part of contact INTO; prints the merge id
  unmerge MERGE_ID     undo a merge (messages stay with the identity that wrote them)
  purge                remove conversations resolved before the retention period
                       (store.retention, or --older-than), with their messages,
                       events and attachments no other message uses

Flags: --config FILE (default ./config.yaml), --json (find, merge), and for purge
--older-than DURATION (e.g. 365d) and --dry-run.
`

func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, storeUsage)
		if len(args) == 0 {
			return exitConfig
		}
		return exitOK
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("inroute store "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "./config.yaml", "configuration file")
	asJSON := fs.Bool("json", false, "print JSON")
	olderThan := fs.String("older-than", "", "purge: resolved longer ago than this (default store.retention)")
	dryRun := fs.Bool("dry-run", false, "purge: only say how many conversations would go")
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return exitConfig
	}
	want := map[string]int{"find": 1, "merge": 2, "unmerge": 1, "purge": 0}
	n, known := want[sub]
	if !known {
		fmt.Fprintf(stderr, "inroute store: unknown subcommand %q\n\n%s", sub, storeUsage)
		return exitConfig
	}
	if len(pos) != n {
		fmt.Fprintf(stderr, "inroute store %s: want %d argument(s), got %d\n\n%s", sub, n, len(pos), storeUsage)
		return exitConfig
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	st, err := system.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "inroute store: %v\n", err)
		return exitFail
	}
	defer st.Close()
	ids := make([]int64, 0, 2)
	if sub == "merge" || sub == "unmerge" {
		for _, p := range pos {
			id, err := strconv.ParseInt(p, 10, 64)
			if err != nil || id <= 0 {
				fmt.Fprintf(stderr, "inroute store %s: %q is not an id\n", sub, p)
				return exitConfig
			}
			ids = append(ids, id)
		}
	}
	switch sub {
	case "find":
		cs, err := st.FindContacts(ctx, pos[0])
		if err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, cs)
		}
		if len(cs) == 0 {
			fmt.Fprintln(stdout, "no contact has that identity")
		}
		for _, c := range cs {
			fmt.Fprintf(stdout, "contact %d %q (since %s)\n", c.ID, c.Name, c.CreatedAt.Format(time.DateOnly))
			for _, id := range c.Identities {
				v := "unverified"
				if id.Verified {
					v = "verified"
				}
				fmt.Fprintf(stdout, "  %-9s %-32s %s (contact %d)\n", id.Kind, id.Value, v, id.ContactID)
			}
		}
	case "merge":
		id, err := st.MergeContacts(ctx, ids[0], ids[1], "admin")
		if err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, map[string]int64{"merge_id": id})
		}
		fmt.Fprintf(stdout, "merged contact %d into %d (merge %d; undo with: inroute store unmerge %d)\n", ids[1], ids[0], id, id)
	case "unmerge":
		if err := st.UndoMerge(ctx, ids[0], "admin"); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "merge %d undone\n", ids[0])
	case "purge":
		keep := cfg.Store.Retention
		if *olderThan != "" {
			d, err := config.ParseDuration(*olderThan)
			if err != nil {
				fmt.Fprintf(stderr, "inroute store purge: --older-than: %v\n", err)
				return exitConfig
			}
			keep = d
		}
		if keep <= 0 {
			fmt.Fprintln(stderr, "inroute store purge: no retention period: set store.retention in the config or pass --older-than (e.g. 365d)")
			return exitConfig
		}
		cutoff := time.Now().Add(-keep.D())
		if *dryRun {
			n, err := countResolvedBefore(ctx, st, cutoff)
			if err != nil {
				return fail(stderr, err)
			}
			fmt.Fprintf(stdout, "would purge %d conversations resolved before %s\n", n, cutoff.Format(time.RFC3339))
			return exitOK
		}
		stats, err := st.Purge(ctx, cutoff)
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "purged conversations resolved before %s: %d conversations, %d messages, %d attachments, %d events, %d blobs\n",
			cutoff.Format(time.RFC3339), stats.Conversations, stats.Messages, stats.Attachments, stats.Events, stats.Blobs)
	}
	return exitOK
}

// countResolvedBefore counts what Purge would remove, from the store's own
// listing, so a dry run needs nothing the Store interface lacks.
func countResolvedBefore(ctx context.Context, st store.Store, cutoff time.Time) (int64, error) {
	type counter interface {
		CountResolvedBefore(ctx context.Context, cutoff time.Time) (int64, error)
	}
	c, ok := st.(counter)
	if !ok {
		return 0, errors.New("this store cannot count a dry run")
	}
	return c.CountResolvedBefore(ctx, cutoff)
}

func fail(w io.Writer, err error) int {
	fmt.Fprintf(w, "inroute store: %v\n", err)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return exitConfig
	}
	return exitFail
}

func printJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFail
	}
	return exitOK
}
