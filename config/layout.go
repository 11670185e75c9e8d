package config

import (
	"errors"
	"iter"
	"maps"
	"slices"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// checkTimeouts reports the timeouts that are not durations. Decoding would
// too, but yaml.v3 drops the line of errors from model.Duration.
func checkTimeouts(src source, l layout) error {
	var errs []error
	nodes := append([]*yaml.Node{l.defaults}, l.cameras...)
	for _, name := range slices.Sorted(maps.Keys(l.moduleNodes)) {
		nodes = append(nodes, l.moduleNodes[name])
	}
	for _, n := range nodes {
		v := mappingValue(n, "timeout")
		if v == nil || v.Kind != yaml.ScalarNode || isNull(v) {
			continue
		}
		if _, err := model.ParseDuration(v.Value); err != nil {
			errs = append(errs, src.errorf(v.Line, "timeout: %v", err))
		}
	}
	return errors.Join(errs...)
}

// layout holds the YAML nodes of the detector and defaults blocks and of
// each camera entry, whose lines the decoded structs do not know.
type layout struct {
	detector *yaml.Node   // nil without a detector block
	defaults *yaml.Node   // nil without a defaults block
	cameras  []*yaml.Node // one per camera entry
	modules  map[string]position
	auths    map[string]position
	// moduleNodes are the modules' mappings, whose timeouts are checked.
	moduleNodes map[string]*yaml.Node
}

func layoutOf(doc *yaml.Node) layout {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return layout{}
	}
	root := doc.Content[0]
	l := layout{detector: mappingValue(root, "detector"), defaults: mappingValue(root, "defaults")}
	if cameras := mappingValue(root, "cameras"); cameras != nil && cameras.Kind == yaml.SequenceNode {
		l.cameras = cameras.Content
	}
	modules := mappingValue(root, "modules")
	l.modules, l.auths = entries(modules), entries(mappingValue(root, "auths"))
	l.moduleNodes = map[string]*yaml.Node{}
	for k, v := range pairs(modules) {
		l.moduleNodes[k.Value] = v
	}
	return l
}

// entries returns the positions of a mapping node's entries by key, each
// at the line of its key.
func entries(n *yaml.Node) map[string]position {
	out := map[string]position{}
	for k, v := range pairs(n) {
		p := positionOf(v)
		p.line = k.Line
		out[k.Value] = p
	}
	return out
}

// camera returns the position of the i-th camera entry. It is unknown if
// the cameras are not a plain sequence, as when they are an alias.
func (l layout) camera(i int) position {
	if i >= len(l.cameras) {
		return position{}
	}
	return positionOf(l.cameras[i])
}

// position is where the defaults block or a camera entry is in the file.
type position struct {
	line   int
	fields map[string]int // line of each field that is set
}

func positionOf(n *yaml.Node) position {
	if n == nil {
		return position{}
	}
	p := position{line: n.Line, fields: make(map[string]int)}
	for k, v := range pairs(n) {
		if !isNull(v) {
			p.fields[k.Value] = k.Line
		}
	}
	return p
}

// pairs yields the keys and values of a mapping node, and nothing for other nodes.
func pairs(n *yaml.Node) iter.Seq2[*yaml.Node, *yaml.Node] {
	return func(yield func(*yaml.Node, *yaml.Node) bool) {
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

// mappingValue returns the value of key in a mapping node, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for k, v := range pairs(n) {
		if k.Value == key {
			return v
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.ShortTag() == "!!null"
}
