package isolation

import (
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// ruleset is the desired content of the table in a form two Syncs can
// compare, so a Sync writes only what changed since the last one.
type ruleset struct {
	chains map[string]*chain
	sets   map[string]*set // sets and maps share one namespace in nft
}

type chain struct {
	base  bool // the one chain on the forward hook
	rules []rule
}

type rule struct{ text, comment string }

type set struct {
	isMap    bool
	typ      string // "ipv4_addr", or "ipv4_addr : verdict" for a map
	interval bool
	elems    map[string]element // by rendered key
}

type element struct{ key, value []string }

func newRuleset() *ruleset {
	return &ruleset{chains: map[string]*chain{}, sets: map[string]*set{}}
}

// chain returns the named chain, creating it empty.
func (rs *ruleset) chain(name string) *chain {
	c := rs.chains[name]
	if c == nil {
		c = &chain{}
		rs.chains[name] = c
	}
	return c
}

func (c *chain) add(text, comment string) { c.rules = append(c.rules, rule{text, comment}) }

// set returns the named set, creating it with the given type.
func (rs *ruleset) set(name, typ string, interval bool) *set {
	s := rs.sets[name]
	if s == nil {
		s = &set{typ: typ, interval: interval, elems: map[string]element{}}
		rs.sets[name] = s
	}
	return s
}

// vmap returns the named map from addresses to verdicts, creating it.
func (rs *ruleset) vmap(name, keyType string) *set {
	s := rs.set(name, keyType+" : verdict", false)
	s.isMap = true
	return s
}

// add adds a set element (value nil) or a map element. A second value for a
// key already present is ignored: compile never produces one, and the first
// writer wins deterministically because compile visits everything sorted.
func (s *set) add(value []string, key ...string) {
	k := strings.Join(key, " . ")
	if _, ok := s.elems[k]; !ok {
		s.elems[k] = element{key: key, value: value}
	}
}

func (s *set) sameDefinition(o *set) bool {
	return s.isMap == o.isMap && s.typ == o.typ && s.interval == o.interval
}

func (e element) equal(o element) bool {
	return slices.Equal(e.key, o.key) && slices.Equal(e.value, o.value)
}

func (s *set) object(name string) knftables.Object {
	var flags []knftables.SetFlag
	if s.interval {
		flags = []knftables.SetFlag{knftables.IntervalFlag}
	}
	if s.isMap {
		return &knftables.Map{Name: name, Type: s.typ, Flags: flags}
	}
	return &knftables.Set{Name: name, Type: s.typ, Flags: flags}
}

func (s *set) elementObject(name string, e element) *knftables.Element {
	if s.isMap {
		return &knftables.Element{Map: name, Key: e.key, Value: e.value}
	}
	return &knftables.Element{Set: name, Key: e.key}
}

func (c *chain) object(name string) *knftables.Chain {
	if !c.base {
		return &knftables.Chain{Name: name}
	}
	return &knftables.Chain{
		Name:     name,
		Type:     knftables.PtrTo(knftables.FilterType),
		Hook:     knftables.PtrTo(knftables.ForwardHook),
		Priority: knftables.PtrTo(knftables.FilterPriority),
		Comment:  knftables.PtrTo("kplex: no traffic between tenants, then NetworkPolicy"),
	}
}

func (c *chain) addRules(tx *knftables.Transaction, name string) {
	for _, r := range c.rules {
		kr := &knftables.Rule{Chain: name, Rule: r.text}
		if r.comment != "" {
			kr.Comment = knftables.PtrTo(r.comment)
		}
		tx.Add(kr)
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// writeFull replaces whatever the table holds with rs in one transaction:
// adding the table first makes the delete succeed on a fresh host, and the
// kernel applies the whole transaction atomically, so packets never see an
// empty table.
func writeFull(tx *knftables.Transaction, rs *ruleset) {
	table := &knftables.Table{Comment: knftables.PtrTo("kplex tenant isolation and NetworkPolicy")}
	tx.Add(table)
	tx.Delete(&knftables.Table{})
	tx.Add(table)
	for _, name := range sortedKeys(rs.sets) {
		tx.Add(rs.sets[name].object(name))
	}
	for _, name := range sortedKeys(rs.chains) {
		tx.Add(rs.chains[name].object(name))
	}
	for _, name := range sortedKeys(rs.sets) {
		s := rs.sets[name]
		for _, k := range sortedKeys(s.elems) {
			tx.Add(s.elementObject(name, s.elems[k]))
		}
	}
	for _, name := range sortedKeys(rs.chains) {
		rs.chains[name].addRules(tx, name)
	}
}

// writeDiff turns old into want: new definitions first (rules and map
// elements refer to them), then chain flushes and element deletions (which
// drop every reference to what goes away), then element and rule additions,
// and the deletions of sets and chains last. It returns false, writing
// nothing, when a set changed its definition under the same name, which only
// a full rewrite handles.
func writeDiff(tx *knftables.Transaction, old, want *ruleset) bool {
	for name, s := range want.sets {
		if o := old.sets[name]; o != nil && !o.sameDefinition(s) {
			return false
		}
	}
	for name, c := range want.chains {
		if o := old.chains[name]; o != nil && o.base != c.base {
			return false
		}
	}

	changed := map[string]bool{}
	for _, name := range sortedKeys(want.chains) {
		o := old.chains[name]
		if o == nil {
			tx.Add(want.chains[name].object(name))
		}
		if o == nil || !slices.Equal(o.rules, want.chains[name].rules) {
			changed[name] = true
		}
	}
	for _, name := range sortedKeys(want.sets) {
		if old.sets[name] == nil {
			tx.Add(want.sets[name].object(name))
		}
	}
	for _, name := range sortedKeys(old.chains) {
		if want.chains[name] == nil || changed[name] {
			tx.Flush(&knftables.Chain{Name: name})
		}
	}
	for _, name := range sortedKeys(want.sets) {
		s, o := want.sets[name], old.sets[name]
		if o == nil {
			continue
		}
		for _, k := range sortedKeys(o.elems) {
			if e, ok := s.elems[k]; !ok || !e.equal(o.elems[k]) {
				tx.Delete(o.elementObject(name, o.elems[k]))
			}
		}
	}
	for _, name := range sortedKeys(want.sets) {
		s, o := want.sets[name], old.sets[name]
		for _, k := range sortedKeys(s.elems) {
			if o != nil {
				if e, ok := o.elems[k]; ok && e.equal(s.elems[k]) {
					continue
				}
			}
			tx.Add(s.elementObject(name, s.elems[k]))
		}
	}
	for _, name := range sortedKeys(want.chains) {
		if changed[name] {
			want.chains[name].addRules(tx, name)
		}
	}
	// Maps go before chains: a verdict map's elements may jump to a chain
	// that goes away with it.
	for _, name := range sortedKeys(old.sets) {
		if want.sets[name] == nil {
			tx.Delete(old.sets[name].object(name))
		}
	}
	for _, name := range sortedKeys(old.chains) {
		if want.chains[name] == nil {
			tx.Delete(&knftables.Chain{Name: name})
		}
	}
	return true
}

// names lists the object names of rs the way knftables' ListAll groups them,
// to tell whether the table still holds what the last Sync wrote.
func (rs *ruleset) names() map[string][]string {
	out := map[string][]string{}
	for _, name := range sortedKeys(rs.chains) {
		out["chain"] = append(out["chain"], name)
	}
	for _, name := range sortedKeys(rs.sets) {
		kind := "set"
		if rs.sets[name].isMap {
			kind = "map"
		}
		out[kind] = append(out[kind], name)
	}
	return out
}
