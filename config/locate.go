package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps dotted keys ("policy.rule[2].class") to the line where
// they are written, so that semantic errors found after decoding can
// still point at a line.
type keyLines map[string]int

// locateKeys is best effort: on a syntax error it returns what it found
// so far (decoding has already succeeded when it is used).
func locateKeys(data []byte) keyLines {
	lines := keyLines{}
	if len(data) == 0 {
		return lines
	}
	var p unstable.Parser
	p.Reset(data)
	table := ""
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name, line := keyPath(&p, e)
			table = name
			if e.Kind == unstable.ArrayTable {
				arrays[name]++
				table = name + "[" + strconv.Itoa(arrays[name]) + "]"
			}
			lines.add(table, line)
		case unstable.KeyValue:
			name, line := keyPath(&p, e)
			if table != "" {
				name = table + "." + name
			}
			lines.add(name, line)
		}
	}
	return lines
}

func (k keyLines) add(key string, line int) {
	if _, ok := k[key]; !ok && line > 0 {
		k[key] = line
	}
}

func keyPath(p *unstable.Parser, e *unstable.Node) (string, int) {
	var parts []string
	line := 0
	it := e.Key()
	for it.Next() {
		n := it.Node()
		if line == 0 {
			line = p.Shape(n.Raw).Start.Line
		}
		parts = append(parts, string(n.Data))
	}
	return strings.Join(parts, "."), line
}

// find returns the line of key, else of its closest written ancestor
// (the table header), else 0.
func (k keyLines) find(key string) int {
	for key != "" {
		if l, ok := k[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}
