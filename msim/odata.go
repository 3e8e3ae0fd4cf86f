package msim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A small OData $filter engine: enough of the grammar Graph accepts on
// directory objects (eq/ne/in, startswith/endswith, and/or/not, parentheses,
// and any() lambdas over collections such as assignedPlans).

type queryErr struct{ msg string }

func (e *queryErr) Error() string { return e.msg }

func qerr(format string, a ...any) error { return &queryErr{fmt.Sprintf(format, a...)} }

// obj is something a filter evaluates against.
type obj interface {
	// prop returns a scalar (string, bool, nil), []any for a collection, or
	// an obj for a navigation property.
	prop(name string) (any, bool)
}

type env struct {
	root obj
	vars map[string]any
}

type node interface{ eval(e *env) (bool, error) }

type operand interface{ value(e *env) (any, error) }

type lit struct{ v any }

func (l lit) value(*env) (any, error) { return l.v, nil }

type path struct{ segs []string }

func (p path) value(e *env) (any, error) {
	var cur any
	segs := p.segs
	if v, ok := e.vars[segs[0]]; ok {
		cur, segs = v, segs[1:]
	} else {
		cur = e.root
	}
	for _, s := range segs {
		o, ok := cur.(obj)
		if !ok {
			return nil, qerr("Invalid filter clause: '%s' is not a structured property.", strings.Join(p.segs, "/"))
		}
		v, ok := o.prop(s)
		if !ok {
			return nil, qerr("Unsupported or invalid query filter clause specified for property '%s'.", s)
		}
		cur = v
	}
	return cur, nil
}

type orNode struct{ l, r node }
type andNode struct{ l, r node }
type notNode struct{ n node }
type cmpNode struct {
	op   string
	l, r operand
}
type inNode struct {
	l    operand
	list []any
}
type funcNode struct {
	name string
	p    path
	arg  string
}
type anyNode struct {
	p    path
	v    string
	body node // nil: any() without a predicate (non-empty)
}

func (n orNode) eval(e *env) (bool, error) {
	a, err := n.l.eval(e)
	if err != nil || a {
		return a, err
	}
	return n.r.eval(e)
}

func (n andNode) eval(e *env) (bool, error) {
	a, err := n.l.eval(e)
	if err != nil || !a {
		return false, err
	}
	return n.r.eval(e)
}

func (n notNode) eval(e *env) (bool, error) {
	a, err := n.n.eval(e)
	return !a, err
}

func equal(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && strings.EqualFold(x, y)
	case nil:
		return b == nil
	default:
		return a == b
	}
}

func (n cmpNode) eval(e *env) (bool, error) {
	a, err := n.l.value(e)
	if err != nil {
		return false, err
	}
	b, err := n.r.value(e)
	if err != nil {
		return false, err
	}
	if _, isColl := a.([]any); isColl {
		return false, qerr("Invalid filter clause: a collection cannot be compared with '%s'; use any().", n.op)
	}
	switch n.op {
	case "eq":
		return equal(a, b), nil
	case "ne":
		return !equal(a, b), nil
	}
	as, aok := a.(string)
	bs, bok := b.(string)
	if !aok || !bok {
		return false, nil
	}
	c := strings.Compare(strings.ToLower(as), strings.ToLower(bs))
	switch n.op {
	case "gt":
		return c > 0, nil
	case "ge":
		return c >= 0, nil
	case "lt":
		return c < 0, nil
	case "le":
		return c <= 0, nil
	}
	return false, qerr("Unsupported operator '%s'.", n.op)
}

func (n inNode) eval(e *env) (bool, error) {
	a, err := n.l.value(e)
	if err != nil {
		return false, err
	}
	for _, v := range n.list {
		if equal(a, v) {
			return true, nil
		}
	}
	return false, nil
}

func (n funcNode) eval(e *env) (bool, error) {
	v, err := n.p.value(e)
	if err != nil {
		return false, err
	}
	check := func(s string) bool {
		s, arg := strings.ToLower(s), strings.ToLower(n.arg)
		if n.name == "startswith" {
			return strings.HasPrefix(s, arg)
		}
		return strings.HasSuffix(s, arg)
	}
	switch x := v.(type) {
	case string:
		return check(x), nil
	case []any: // string collections (businessPhones, proxyAddresses)
		for _, it := range x {
			if s, ok := it.(string); ok && check(s) {
				return true, nil
			}
		}
	}
	return false, nil
}

func (n anyNode) eval(e *env) (bool, error) {
	v, err := n.p.value(e)
	if err != nil {
		return false, err
	}
	coll, ok := v.([]any)
	if !ok {
		return false, qerr("Invalid filter clause: '%s' is not a collection.", strings.Join(n.p.segs, "/"))
	}
	if n.body == nil {
		return len(coll) > 0, nil
	}
	saved, had := e.vars[n.v]
	defer func() {
		if had {
			e.vars[n.v] = saved
		} else {
			delete(e.vars, n.v)
		}
	}()
	for _, it := range coll {
		e.vars[n.v] = it
		ok, err := n.body.eval(e)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// filter is a parsed $filter with what it needs from the request.
type filter struct {
	root     node
	advanced bool     // uses ne/not/endswith: needs ConsistencyLevel + $count
	props    []string // root properties it reads
}

func (f *filter) match(o obj) (bool, error) {
	if f == nil {
		return true, nil
	}
	return f.root.eval(&env{root: o, vars: map[string]any{}})
}

type tok struct {
	kind byte // 'w' word, 's' string, '(' ')' ',' ':'
	text string
}

func lex(s string) ([]tok, error) {
	var out []tok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')' || c == ',' || c == ':':
			out = append(out, tok{c, string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, qerr("Syntax error: unterminated string literal in $filter.")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, tok{'s', b.String()})
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t(),:'", rune(s[j])) {
				j++
			}
			out = append(out, tok{'w', s[i:j]})
			i = j
		}
	}
	return out, nil
}

type parser struct {
	toks []tok
	pos  int
	f    *filter
	vars map[string]bool
}

// parseFilter parses a $filter expression.
func parseFilter(s string) (*filter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, f: &filter{}, vars: map[string]bool{}}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, qerr("Syntax error at position %d in '%s'.", p.pos, s)
	}
	p.f.root = n
	return p.f, nil
}

func (p *parser) peek() *tok {
	if p.pos < len(p.toks) {
		return &p.toks[p.pos]
	}
	return nil
}

func (p *parser) word(w string) bool {
	t := p.peek()
	if t != nil && t.kind == 'w' && strings.EqualFold(t.text, w) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(k byte) error {
	t := p.peek()
	if t == nil || t.kind != k {
		return qerr("Syntax error: expected '%c' in $filter.", k)
	}
	p.pos++
	return nil
}

func (p *parser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.word("or") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *parser) and() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.word("and") {
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	if p.word("not") {
		p.f.advanced = true
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	}
	return p.primary()
}

func (p *parser) mkPath(w string) path {
	segs := strings.Split(w, "/")
	if !p.vars[segs[0]] {
		p.f.props = append(p.f.props, segs[0])
	}
	return path{segs}
}

func (p *parser) primary() (node, error) {
	t := p.peek()
	if t == nil {
		return nil, qerr("Syntax error: unexpected end of $filter.")
	}
	if t.kind == '(' {
		p.pos++
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		return n, p.expect(')')
	}
	if t.kind != 'w' {
		return nil, qerr("Syntax error near '%s' in $filter.", t.text)
	}
	w := t.text
	p.pos++
	lw := strings.ToLower(w)
	// function call
	if (lw == "startswith" || lw == "endswith") && p.peek() != nil && p.peek().kind == '(' {
		p.pos++
		pt := p.peek()
		if pt == nil || pt.kind != 'w' {
			return nil, qerr("Syntax error: %s needs a property.", w)
		}
		p.pos++
		pp := p.mkPath(pt.text)
		if err := p.expect(','); err != nil {
			return nil, err
		}
		at := p.peek()
		if at == nil || at.kind != 's' {
			return nil, qerr("Syntax error: %s needs a string literal.", w)
		}
		p.pos++
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		if lw == "endswith" {
			p.f.advanced = true
		}
		return funcNode{lw, pp, at.text}, nil
	}
	// lambda: coll/any(x: body)
	if i := strings.LastIndex(lw, "/any"); i > 0 && i == len(lw)-4 && p.peek() != nil && p.peek().kind == '(' {
		p.pos++
		pp := p.mkPath(w[:i])
		if p.peek() != nil && p.peek().kind == ')' {
			p.pos++
			return anyNode{p: pp}, nil
		}
		vt := p.peek()
		if vt == nil || vt.kind != 'w' {
			return nil, qerr("Syntax error: any() needs a range variable.")
		}
		p.pos++
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		p.vars[vt.text] = true
		body, err := p.or()
		delete(p.vars, vt.text)
		if err != nil {
			return nil, err
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		return anyNode{pp, vt.text, body}, nil
	}
	left := p.operandOf(tok{'w', w})
	ot := p.peek()
	if ot == nil || ot.kind != 'w' {
		return nil, qerr("Syntax error: '%s' must be compared with an operator (eq, ne, in, ...).", w)
	}
	op := strings.ToLower(ot.text)
	p.pos++
	switch op {
	case "eq", "ne", "gt", "ge", "lt", "le":
		if op == "ne" {
			p.f.advanced = true
		}
		rt := p.peek()
		if rt == nil || (rt.kind != 'w' && rt.kind != 's') {
			return nil, qerr("Syntax error: '%s' needs a value.", op)
		}
		p.pos++
		return cmpNode{op, left, p.operandOf(*rt)}, nil
	case "in":
		if err := p.expect('('); err != nil {
			return nil, err
		}
		var list []any
		for {
			vt := p.peek()
			if vt == nil {
				return nil, qerr("Syntax error: unterminated in().")
			}
			p.pos++
			if vt.kind == ')' {
				break
			}
			if vt.kind == ',' {
				continue
			}
			l, _ := p.operandOf(*vt).(lit)
			list = append(list, l.v)
		}
		return inNode{left, list}, nil
	}
	return nil, qerr("Unsupported operator '%s' in $filter.", ot.text)
}

func (p *parser) operandOf(t tok) operand {
	if t.kind == 's' {
		return lit{t.text}
	}
	switch strings.ToLower(t.text) {
	case "true":
		return lit{true}
	case "false":
		return lit{false}
	case "null":
		return lit{nil}
	}
	if _, ok := parseGUID(t.text); ok {
		return lit{t.text}
	}
	if _, err := strconv.ParseFloat(t.text, 64); err == nil {
		return lit{t.text}
	}
	return p.mkPath(t.text)
}

// searchTerm is one "property:value" clause of $search.
type searchTerm struct{ prop, val string }

// parseSearch parses $search="displayName:x" [OR|AND "description:y"].
func parseSearch(s string, allowed ...string) ([]searchTerm, bool, error) {
	s = strings.TrimSpace(s)
	and := false
	var out []searchTerm
	for s != "" {
		if !strings.HasPrefix(s, `"`) {
			return nil, false, qerr("Syntax error: the $search value must be a quoted \"property:value\" clause.")
		}
		end := strings.Index(s[1:], `"`)
		if end < 0 {
			return nil, false, qerr("Syntax error: unterminated quote in $search.")
		}
		clause := s[1 : end+1]
		s = strings.TrimSpace(s[end+2:])
		prop, val, ok := strings.Cut(clause, ":")
		if !ok {
			return nil, false, qerr("Syntax error: $search clause %q must be \"property:value\".", clause)
		}
		if !contains(allowed, prop) {
			return nil, false, qerr("Unsupported property '%s' in $search.", prop)
		}
		out = append(out, searchTerm{prop, strings.ToLower(val)})
		switch {
		case strings.HasPrefix(s, "OR "):
			s = strings.TrimSpace(s[3:])
		case strings.HasPrefix(s, "AND "):
			and = true
			s = strings.TrimSpace(s[4:])
		case s != "":
			return nil, false, qerr("Syntax error in $search near %q.", s)
		}
	}
	return out, and, nil
}

// searchMatch is Graph's tokenised search: a value matches when any word of
// it (or the whole value) starts with the term.
func searchMatch(value, term string) bool {
	v := strings.ToLower(value)
	if strings.HasPrefix(v, term) {
		return true
	}
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '-' || r == '_' || r == '.' || r == '@' }) {
		if strings.HasPrefix(w, term) {
			return true
		}
	}
	return false
}

// ---- opaque page tokens ----

// pageToken is the state behind $skiptoken and $deltatoken values. It is
// authenticated so a client cannot forge positions, and opaque to it.
type pageToken struct {
	kind  byte   // 'l' list, 'i' delta initial round, 'c' delta changes, 'd' delta link
	epoch uint32 // tenant delta epoch
	sel   uint32 // selected user properties (delta)
	pos   uint64 // next index
	from  uint64 // change-log window start (exclusive)
	to    uint64 // change-log window end (inclusive), or snapshot length
}

var errBadToken = errors.New("bad token")

func (s *Sim) encodeToken(pt pageToken) string {
	b := make([]byte, 0, 48)
	b = append(b, 1, pt.kind)
	b = binary.BigEndian.AppendUint32(b, pt.epoch)
	b = binary.BigEndian.AppendUint32(b, pt.sel)
	b = binary.AppendUvarint(b, pt.pos)
	b = binary.AppendUvarint(b, pt.from)
	b = binary.AppendUvarint(b, pt.to)
	m := hmac.New(sha256.New, s.pageKey[:])
	m.Write(b)
	b = m.Sum(b)[:len(b)+10]
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Sim) decodeToken(v string) (pageToken, error) {
	var pt pageToken
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < 12+10 || b[0] != 1 {
		return pt, errBadToken
	}
	body, mac := b[:len(b)-10], b[len(b)-10:]
	m := hmac.New(sha256.New, s.pageKey[:])
	m.Write(body)
	if !hmac.Equal(m.Sum(nil)[:10], mac) {
		return pt, errBadToken
	}
	pt.kind = body[1]
	pt.epoch = binary.BigEndian.Uint32(body[2:])
	pt.sel = binary.BigEndian.Uint32(body[6:])
	rest := body[10:]
	for _, dst := range []*uint64{&pt.pos, &pt.from, &pt.to} {
		x, n := binary.Uvarint(rest)
		if n <= 0 {
			return pt, errBadToken
		}
		*dst, rest = x, rest[n:]
	}
	return pt, nil
}
