package config

import (
	"reflect"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// go-toml decodes a TOML integer straight into Duration's int64, so
// `retention = 7` would silently mean 7 nanoseconds. checkStringValues
// walks the document and refuses a non-string value for every key whose
// Go type is Duration, Rate or Percent (`warn_budget = 3` would be
// 300 %, and 0.03 a guess at what the operator meant).

var (
	durationType = reflect.TypeFor[Duration]()
	rateType     = reflect.TypeFor[Rate]()
	percentType  = reflect.TypeFor[Percent]()
)

// stringKeys maps dotted key paths (array indices dropped) to an example
// value for the message.
func stringKeys() map[string]string {
	m := map[string]string{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			key := prefix + name
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			switch {
			case ft == durationType:
				m[key] = `"5m"`
			case ft == rateType:
				m[key] = `"10/s"`
			case ft == percentType:
				m[key] = `"3%"`
			case ft.Kind() == reflect.Struct:
				walk(ft, key+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return m
}

// checkStringValues returns the first offending key; it is best effort
// and stays silent on syntax errors, which decoding reports better.
func checkStringValues(data []byte, name string) error {
	keys := stringKeys()
	var p unstable.Parser
	p.Reset(data)
	table := ""
	var check func(key string, v *unstable.Node, line int) error
	check = func(key string, v *unstable.Node, line int) error {
		switch v.Kind {
		case unstable.String:
			return nil
		case unstable.Array:
			it := v.Children()
			for it.Next() {
				if err := check(key, it.Node(), line); err != nil {
					return err
				}
			}
			return nil
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				kv := it.Node()
				sub, _ := keyPath(&p, kv)
				if err := check(key+"."+sub, kv.Value(), line); err != nil {
					return err
				}
			}
			return nil
		}
		if ex, ok := keys[key]; ok {
			return &Error{File: name, Line: line, Key: key, Msg: "must be a quoted string such as " + ex}
		}
		return nil
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table, _ = keyPath(&p, e)
		case unstable.KeyValue:
			key, line := keyPath(&p, e)
			if table != "" {
				key = table + "." + key
			}
			if err := check(key, e.Value(), line); err != nil {
				return err
			}
		}
	}
	return nil
}
