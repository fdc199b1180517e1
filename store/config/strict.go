package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// CheckNode walks a parsed YAML document against the Go type of v (a
// pointer to a section struct) and returns the first key that no field
// has, or the first value its field refuses, as a *FieldError naming the
// full path: `radius.clients[0]: unknown key "secert"`,
// `radius.coa.timeout: bad duration "30"`. yaml.v3's own errors name a
// line and a Go type instead. It only checks; decoding stays yaml.v3's.
func CheckNode(doc *yaml.Node, v any) error {
	return walk(doc, reflect.TypeOf(v), "")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func walk(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
			continue
		}
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == 0 || n.Tag == "!!null" {
		return nil // an empty document or value: the defaults stand
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || t.Implements(unmarshalerType) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return &FieldError{Field: orTop(path), Err: err}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return Errorf(orTop(path), "want a mapping of keys, not %q", n.Value)
		}
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				return Errorf(orTop(path), "unknown key %q", k)
			}
			if err := walk(n.Content[i+1], ft, join(path, k)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			break // a scalar where a list goes: yaml.v3 says so
		}
		for i, c := range n.Content {
			if err := walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			break
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Interface:
		// Anything goes.
	default:
		if n.Kind != yaml.ScalarNode {
			return Errorf(orTop(path), "want a single value")
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return Errorf(orTop(path), "bad value %q (want %s)", n.Value, kindName(t))
		}
	}
	return nil
}

// collectFields maps each YAML key of struct t (yaml.v3's names: the tag,
// else the lower-cased field name; ",inline" structs merged) to its type.
func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if !f.IsExported() && !strings.Contains(opts, "inline") {
			continue
		}
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, out)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}
