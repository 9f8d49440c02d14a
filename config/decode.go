package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// The decoder walks the YAML tree alongside the Go types instead of handing
// the whole tree to yaml.NodeToValue: goccy/go-yaml stops at the first
// problem (and picks an arbitrary one of several unknown keys), while an
// admin wants every problem, each at its line and column, and the validator
// needs to know where every setting was written. Leaves whose type has its
// own YAML unmarshaler (Duration, ByteSize, time.Duration, ...) are still
// decoded by yaml.NodeToValue, so that its rules apply to them.

const (
	// maxDepth bounds nesting of settings, aliases, tags and merge keys.
	// Config is a handful of levels deep; anything deeper is a loop such as
	// an alias inside its own anchor.
	maxDepth = 64
	// maxVisits bounds the work aliases can multiply ("billion laughs"):
	// a real config has a few hundred values.
	maxVisits = 100_000
)

type anchorDef struct {
	at   position
	node ast.Node
}

// loc is where a setting was written: its key (absent for list items and the
// root) and its value.
type loc struct {
	key, val position
	hasKey   bool
}

type decoder struct {
	env   func(string) (string, bool)
	probs *problems

	anchors   map[string][]anchorDef // by name, in document order
	envErrs   map[ast.Node]string    // scalars with a malformed ${...}
	envDone   map[ast.Node]bool      // envErrs already reported with a path
	unsetVars map[ast.Node][]string  // scalars that used unset variables

	index  map[string]loc      // setting path -> where it was written
	failed failures            // paths whose value could not be decoded
	unset  map[string][]string // setting path -> unset variables behind it

	visits   int
	tooLarge bool
}

func newDecoder(file string, env func(string) (string, bool)) *decoder {
	return &decoder{
		env:       env,
		probs:     &problems{file: file},
		anchors:   map[string][]anchorDef{},
		envErrs:   map[ast.Node]string{},
		envDone:   map[ast.Node]bool{},
		unsetVars: map[ast.Node][]string{},
		index:     map[string]loc{},
		failed:    failures{at: map[string]bool{}, within: map[string]bool{}},
		unset:     map[string][]string{},
	}
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func (d *decoder) fail(path string) { d.failed.add(path) }

// spend counts one unit of work and reports whether the budget still holds.
func (d *decoder) spend(at position) bool {
	d.visits++
	if d.visits <= maxVisits {
		return true
	}
	if !d.tooLarge {
		d.tooLarge = true
		d.probs.addf(at, "the file expands to more than %d values; check for aliases that refer to each other", maxVisits)
	}
	return false
}

// decode decodes n into dst, the setting at path.
func (d *decoder) decode(path string, n ast.Node, dst reflect.Value, depth int) {
	at := nodePos(n)
	if !d.spend(at) {
		d.fail(path)
		return
	}
	if depth > maxDepth {
		d.fail(path)
		d.probs.addf(at, "%snested too deeply", prefix(path))
		return
	}
	n, ok := d.resolve(path, n)
	if !ok {
		d.fail(path)
		return
	}
	if names := d.unsetVars[n]; names != nil {
		d.unset[path] = names
	}
	if isNull(n) {
		return // keep the zero value, which means "default"
	}
	t := dst.Type()
	if hasUnmarshaler(t) {
		d.decodeByYAML(path, n, dst)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		v := reflect.New(t.Elem())
		d.decode(path, n, v.Elem(), depth+1)
		dst.Set(v)
	case reflect.Struct:
		d.decodeStruct(path, n, dst, depth)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			d.decodeByYAML(path, n, dst)
			return
		}
		d.decodeMap(path, n, dst, depth)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			d.decodeByYAML(path, n, dst) // []byte: !!binary and friends
			return
		}
		d.decodeSlice(path, n, dst, depth)
	case reflect.String:
		s, ok := scalarText(n)
		if !ok {
			d.typeErr(path, n, "a string", "")
			return
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.typeErr(path, n, "true or false", "")
			return
		}
		dst.SetBool(b.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.decodeInt(path, n, dst)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		d.decodeUint(path, n, dst)
	case reflect.Float32, reflect.Float64:
		d.decodeFloat(path, n, dst)
	default:
		d.decodeByYAML(path, n, dst)
	}
}

// resolve follows anchors, aliases and standard tags down to the node that
// holds the value. A scalar with a malformed ${...} is reported here, with
// the path of the setting it was meant for.
func (d *decoder) resolve(path string, n ast.Node) (ast.Node, bool) {
	forceString := false
	for range maxDepth {
		switch m := n.(type) {
		case *ast.AnchorNode:
			n = m.Value
		case *ast.AliasNode:
			target, ok := d.anchor(m)
			if !ok {
				d.probs.addf(nodePos(m), "%sunknown alias %s (an alias must follow its &anchor)", prefix(path), quote("*"+aliasName(m)))
				return nil, false
			}
			n = target
		case *ast.TagNode:
			tag := ""
			if m.Start != nil {
				tag = m.Start.Value
			}
			switch token.ReservedTagKeyword(tag) {
			case token.StringTag:
				forceString = true
			case token.IntegerTag, token.FloatTag, token.BooleanTag, token.NullTag, token.MappingTag, token.SequenceTag:
			case token.BinaryTag, token.TimestampTag:
				// Only goccy/go-yaml knows how to decode these ([]byte,
				// time.Time); the tag must reach it.
				return m, true
			default:
				d.probs.addf(nodePos(m), "%sunsupported tag %s", prefix(path), quote(tag))
				return nil, false
			}
			n = m.Value
		default:
			if isNilNode(n) {
				n = nil
			}
			if msg, bad := d.envErrs[n]; bad {
				d.envDone[n] = true
				d.probs.addf(nodePos(n), "%s%s", prefix(path), msg)
				return nil, false
			}
			if forceString {
				return d.forceString(n), true
			}
			return n, true
		}
	}
	d.probs.addf(nodePos(n), "%saliases or tags nested too deeply", prefix(path))
	return nil, false
}

// forceString applies !!str: the scalar's text, whatever it looked like.
func (d *decoder) forceString(n ast.Node) ast.Node {
	s, ok := scalarText(n)
	if !ok && !isNull(n) {
		return n // a collection: the type check reports it
	}
	if !isImplicitNull(n) && isNull(n) {
		s = n.GetToken().Value // "!!str null" is the string "null"
	}
	var tk *token.Token
	if n != nil {
		tk = n.GetToken()
	}
	out := &ast.StringNode{BaseNode: &ast.BaseNode{}, Token: tk, Value: s}
	if names := d.unsetVars[n]; names != nil {
		d.unsetVars[out] = names
	}
	return out
}

func aliasName(a *ast.AliasNode) string {
	if a.Value == nil || isNilNode(a.Value) || a.Value.GetToken() == nil {
		return ""
	}
	return a.Value.GetToken().Value
}

// anchor finds the anchor an alias refers to: the last one of that name
// defined before the alias, as YAML specifies.
func (d *decoder) anchor(a *ast.AliasNode) (ast.Node, bool) {
	at := nodePos(a)
	defs := d.anchors[aliasName(a)]
	for i := len(defs) - 1; i >= 0; i-- {
		if defs[i].at.line < at.line || defs[i].at.line == at.line && defs[i].at.col < at.col {
			return defs[i].node, true
		}
	}
	return nil, false
}

// pair is one key: value of a mapping, merge keys already applied.
type pair struct {
	key   string
	keyAt position
	val   ast.Node
}

// pairs lists the entries of mapping n. Entries brought in by a merge key
// ("<<: *base") come after the mapping's own entries and lose to them, as
// the YAML merge key type specifies.
func (d *decoder) pairs(path string, n ast.Node, depth int) ([]pair, bool) {
	var mvs []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		mvs = m.Values
	case *ast.MappingValueNode:
		mvs = []*ast.MappingValueNode{m}
	default:
		d.typeErr(path, n, "a mapping", "")
		return nil, false
	}
	var own, merged []pair
	for _, mv := range mvs {
		if mv == nil || !d.spend(nodePos(mv)) {
			continue
		}
		if mv.Key != nil && !isNilNode(mv.Key) && mv.Key.IsMergeKey() {
			merged = append(merged, d.mergePairs(path, mv.Value, depth+1)...)
			continue
		}
		key, keyAt, ok := d.keyOf(path, mv)
		if !ok {
			continue
		}
		own = append(own, pair{key: key, keyAt: keyAt, val: mv.Value})
	}
	if len(merged) == 0 {
		return own, true
	}
	seen := make(map[string]bool, len(own)+len(merged))
	for _, p := range own {
		seen[p.key] = true
	}
	for _, p := range merged {
		if !seen[p.key] {
			seen[p.key] = true
			own = append(own, p)
		}
	}
	return own, true
}

// mergePairs lists the entries a merge key brings in: a mapping, or a list
// of mappings of which the earlier win.
func (d *decoder) mergePairs(path string, v ast.Node, depth int) []pair {
	if depth > maxDepth {
		d.probs.addf(nodePos(v), "%smerge keys nested too deeply (is an alias inside its own anchor?)", prefix(path))
		return nil
	}
	r, ok := d.resolve(path, v)
	if !ok {
		return nil
	}
	switch m := r.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		ps, _ := d.pairs(path, r, depth)
		return ps
	case *ast.SequenceNode:
		var out []pair
		for _, e := range m.Values {
			er, ok := d.resolve(path, e)
			if !ok {
				continue
			}
			switch er.(type) {
			case *ast.MappingNode, *ast.MappingValueNode:
				ps, _ := d.pairs(path, er, depth+1)
				out = append(out, ps...)
			default:
				d.probs.addf(nodePos(e), "%s\"<<\" merges mappings, got %s", prefix(path), describe(er))
			}
		}
		return out
	}
	d.probs.addf(nodePos(v), "%s\"<<\" wants a mapping or a list of mappings, got %s", prefix(path), describe(r))
	return nil
}

// keyOf returns a mapping key as a string. Keys are names (of settings, of
// channels); a collection as a key is a mistake.
func (d *decoder) keyOf(path string, mv *ast.MappingValueNode) (string, position, bool) {
	var k ast.Node = mv.Key
	if mk, ok := k.(*ast.MappingKeyNode); ok {
		k = mk.Value
	}
	if isNilNode(k) {
		return "", nodePos(mv), false
	}
	at := nodePos(k)
	k, ok := d.resolve(path, k)
	if !ok {
		return "", at, false
	}
	if s, ok := scalarText(k); ok {
		return s, at, true
	}
	if _, ok := k.(*ast.NullNode); ok {
		if tk := k.GetToken(); tk != nil {
			return tk.Value, at, true
		}
		return "null", at, true
	}
	d.probs.addf(at, "%skeys must be plain names, got %s", prefix(path), describe(k))
	return "", at, false
}

func (d *decoder) record(path string, p pair) {
	val := p.keyAt
	if !isImplicitNull(p.val) {
		val = nodePos(p.val)
	}
	d.index[path] = loc{key: p.keyAt, val: val, hasKey: true}
}

func (d *decoder) decodeStruct(path string, n ast.Node, dst reflect.Value, depth int) {
	ps, ok := d.pairs(path, n, depth)
	if !ok {
		d.fail(path)
		return
	}
	fields := structFields(dst.Type())
	in := ""
	if path != "" {
		in = " in " + path
	}
	for _, p := range ps {
		idx, ok := fields[p.key]
		if !ok {
			d.probs.addf(p.keyAt, "unknown field %s%s", quote(p.key), in)
			continue
		}
		fp := p.key
		if path != "" {
			fp = path + "." + p.key
		}
		d.record(fp, p)
		d.decode(fp, p.val, dst.FieldByIndex(idx), depth+1)
	}
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (d *decoder) decodeMap(path string, n ast.Node, dst reflect.Value, depth int) {
	ps, ok := d.pairs(path, n, depth)
	if !ok {
		d.fail(path)
		return
	}
	t := dst.Type()
	m := reflect.MakeMapWithSize(t, len(ps))
	for _, p := range ps {
		kp := mapPath(path, p.key)
		d.record(kp, p)
		elem := reflect.New(t.Elem()).Elem()
		d.decode(kp, p.val, elem, depth+1)
		key := reflect.New(t.Key()).Elem()
		key.SetString(p.key)
		m.SetMapIndex(key, elem)
	}
	dst.Set(m)
}

func (d *decoder) decodeSlice(path string, n ast.Node, dst reflect.Value, depth int) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.typeErr(path, n, "a list", "")
		return
	}
	s := reflect.MakeSlice(dst.Type(), len(seq.Values), len(seq.Values))
	for i, v := range seq.Values {
		ep := fmt.Sprintf("%s[%d]", path, i)
		d.index[ep] = loc{val: nodePos(v)}
		d.decode(ep, v, s.Index(i), depth+1)
	}
	dst.Set(s)
}

var integerText = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)

func (d *decoder) decodeInt(path string, n ast.Node, dst reflect.Value) {
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		d.numberErr(path, n, "an integer")
		return
	}
	var v int64
	switch x := in.Value.(type) {
	case int64:
		v = x
	case uint64:
		if x > math.MaxInt64 {
			d.rangeErr(path, n)
			return
		}
		v = int64(x)
	default:
		d.rangeErr(path, n)
		return
	}
	if dst.OverflowInt(v) {
		d.rangeErr(path, n)
		return
	}
	dst.SetInt(v)
}

func (d *decoder) decodeUint(path string, n ast.Node, dst reflect.Value) {
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		d.numberErr(path, n, "a whole number")
		return
	}
	var v uint64
	switch x := in.Value.(type) {
	case uint64:
		v = x
	case int64:
		if x < 0 {
			d.fail(path)
			d.probs.addf(nodePos(n), "%smust not be negative, got %d", prefix(path), x)
			return
		}
		v = uint64(x)
	default:
		d.rangeErr(path, n)
		return
	}
	if dst.OverflowUint(v) {
		d.rangeErr(path, n)
		return
	}
	dst.SetUint(v)
}

func (d *decoder) decodeFloat(path string, n ast.Node, dst reflect.Value) {
	var v float64
	switch m := n.(type) {
	case *ast.FloatNode:
		v = m.Value
	case *ast.InfinityNode:
		v = m.Value
	case *ast.NanNode:
		v = math.NaN()
	case *ast.IntegerNode:
		switch x := m.Value.(type) {
		case int64:
			v = float64(x)
		case uint64:
			v = float64(x)
		default:
			d.rangeErr(path, n)
			return
		}
	default:
		d.numberErr(path, n, "a number")
		return
	}
	if dst.OverflowFloat(v) {
		d.rangeErr(path, n)
		return
	}
	dst.SetFloat(v)
}

// numberErr reports a non-number where a number was wanted, telling apart
// the two mistakes that look like numbers: too many digits, and quotes.
func (d *decoder) numberErr(path string, n ast.Node, want string) {
	if s, ok := n.(*ast.StringNode); ok {
		if !isQuoted(s) && integerText.MatchString(s.Value) {
			d.rangeErr(path, n)
			return
		}
		if isQuoted(s) && s.Token != nil {
			switch plainScalar(s.Value, s.Token).(type) {
			case *ast.IntegerNode, *ast.FloatNode:
				d.typeErr(path, n, want, " (remove the quotes)")
				return
			}
		}
	}
	d.typeErr(path, n, want, "")
}

func (d *decoder) rangeErr(path string, n ast.Node) {
	d.fail(path)
	s, _ := scalarText(n)
	d.probs.addf(nodePos(n), "%s%s is out of range", prefix(path), s)
}

func (d *decoder) typeErr(path string, n ast.Node, want, hint string) {
	d.fail(path)
	d.probs.addf(nodePos(n), "%swant %s, got %s%s", prefix(path), want, describe(n), hint)
}

// describe names what an admin wrote, for "want X, got Y".
func describe(n ast.Node) string {
	switch m := n.(type) {
	case nil:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.LiteralNode:
		return "a block of text"
	case *ast.NullNode:
		return "null"
	case *ast.TagNode:
		if m.Start != nil {
			return "a value tagged " + m.Start.Value
		}
	case *ast.StringNode:
		if isQuoted(m) {
			return "the quoted string " + quote(m.Value)
		}
		return quote(m.Value)
	}
	if s, ok := scalarText(n); ok {
		return s
	}
	return strings.ToLower(n.Type().String())
}

// wantDescriber is implemented by scalar types with their own syntax, so that
// a collection given for them is reported in their terms.
type wantDescriber interface{ yamlWant() string }

var (
	wantDescriberType = reflect.TypeFor[wantDescriber]()
	unmarshalerTypes  = []reflect.Type{
		reflect.TypeFor[yaml.InterfaceUnmarshaler](),
		reflect.TypeFor[yaml.InterfaceUnmarshalerContext](),
		reflect.TypeFor[yaml.BytesUnmarshaler](),
		reflect.TypeFor[yaml.BytesUnmarshalerContext](),
		reflect.TypeFor[yaml.NodeUnmarshaler](),
		reflect.TypeFor[yaml.NodeUnmarshalerContext](),
		reflect.TypeFor[encoding.TextUnmarshaler](),
	}
)

func hasUnmarshaler(t reflect.Type) bool {
	if t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[time.Time]() {
		return true
	}
	pt := reflect.PointerTo(t)
	for _, u := range unmarshalerTypes {
		if pt.Implements(u) {
			return true
		}
	}
	return false
}

// decodeByYAML hands one value to goccy/go-yaml.
func (d *decoder) decodeByYAML(path string, n ast.Node, dst reflect.Value) {
	t := dst.Type()
	if t.Implements(wantDescriberType) && !isScalar(n) {
		d.typeErr(path, n, reflect.Zero(t).Interface().(wantDescriber).yamlWant(), "")
		return
	}
	ptr := reflect.New(t)
	if err := nodeToValue(n, ptr.Interface()); err != nil {
		d.fail(path)
		d.probs.addYAML(nodePos(n), prefix(path), err)
		return
	}
	dst.Set(ptr.Elem())
}

// nodeToValue is yaml.NodeToValue made safe for any input: a config file is
// only text, so a bug in the YAML library must not take the process down.
func nodeToValue(n ast.Node, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode this value (YAML library failure: %v)", r)
		}
	}()
	return yaml.NodeToValue(n, v, yaml.DisallowUnknownField())
}

var fieldCache sync.Map // reflect.Type -> map[string][]int

// structFields maps YAML names to field indexes, following goccy/go-yaml's
// rules: the yaml tag, else the json tag, else the lower-cased field name;
// "-" skips a field and ",inline" lifts an embedded struct's fields.
func structFields(t reflect.Type) map[string][]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" {
			tag = f.Tag.Get("json")
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Type.Kind() == reflect.Struct && strings.Contains(","+opts+",", ",inline,") {
			for k, idx := range structFields(f.Type) {
				if _, taken := m[k]; !taken {
					m[k] = append([]int{i}, idx...)
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = []int{i}
	}
	fieldCache.Store(t, m)
	return m
}

// scalarText is the text of a scalar as written (after ${} expansion):
// "007" stays "007" rather than becoming the octal number 7, which matters
// for names and tokens.
func scalarText(n ast.Node) (string, bool) {
	switch m := n.(type) {
	case *ast.StringNode:
		return m.Value, true
	case *ast.LiteralNode:
		if m.Value == nil {
			return "", true
		}
		return m.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	return "", false
}

func isScalar(n ast.Node) bool {
	_, ok := scalarText(n)
	return ok || isNull(n)
}

func isQuoted(s *ast.StringNode) bool {
	return s.Token != nil && (s.Token.Type == token.SingleQuoteType || s.Token.Type == token.DoubleQuoteType)
}

func isNull(n ast.Node) bool {
	if isNilNode(n) {
		return true
	}
	_, ok := n.(*ast.NullNode)
	return ok
}

// isImplicitNull reports a key written with no value at all ("apps:"), whose
// null node the parser places after the colon; such settings are better
// pointed at by their key.
func isImplicitNull(n ast.Node) bool {
	if isNilNode(n) {
		return true
	}
	m, ok := n.(*ast.NullNode)
	return ok && (m.Token == nil || m.Token.Type == token.ImplicitNullType)
}

// isNilNode catches nil interfaces and typed nil pointers, which the parser
// leaves in a few places (an anchor or tag with nothing after it).
func isNilNode(n ast.Node) bool {
	if n == nil {
		return true
	}
	v := reflect.ValueOf(n)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// nodePos is where an admin would look for n: the first key of a block
// mapping, the opening token of anything else.
func nodePos(n ast.Node) position {
	if isNilNode(n) {
		return startOfFile
	}
	switch m := n.(type) {
	case *ast.MappingNode:
		if !m.IsFlowStyle && len(m.Values) > 0 && m.Values[0] != nil {
			return nodePos(m.Values[0])
		}
	case *ast.MappingValueNode:
		if !isNilNode(m.Key) {
			return nodePos(m.Key)
		}
	}
	if p, ok := tokenPos(n.GetToken()); ok {
		return p
	}
	return startOfFile
}
