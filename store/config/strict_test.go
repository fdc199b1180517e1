package config

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type testClient struct {
	Name   string `yaml:"name"`
	Secret string `yaml:"secret"`
	Port   int    `yaml:"coa_port"`
	Strict *bool  `yaml:"strict"`
}

type testSection struct {
	Clients []testClient `yaml:"clients"`
	CoA     struct {
		Timeout Duration `yaml:"timeout"`
	} `yaml:"coa"`
	Tags map[string]Duration `yaml:"tags"`
}

type testInline struct {
	Shared string `yaml:"shared"`
}

type testFile struct {
	DataDir    string      `yaml:"data_dir"`
	RADIUS     testSection `yaml:"radius"`
	testInline `yaml:",inline"`
	Internal   bool `yaml:"-"`
}

func TestCheckNodeNamesThePathOfUnknownKeysAndBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"ok", "data_dir: /x\nshared: y\nradius:\n  clients:\n    - {name: a, secret: s, coa_port: 3799, strict: true}\n  coa: {timeout: 1s}\n  tags: {a: 5m}\n", ""},
		{"empty", "", ""},
		{"null section", "radius:\n", ""},
		{"unknown key in a list item", "radius:\n  clients:\n    - {name: a, secert: x}\n", `config: radius.clients[0]: unknown key "secert"`},
		{"unknown top-level key", "dta_dir: /x\n", `config: (top level): unknown key "dta_dir"`},
		{"a \"-\" field is not a key", "internal: true\n", `unknown key "internal"`},
		{"bad duration", "radius:\n  coa:\n    timeout: 30\n", `config: radius.coa.timeout: bad duration "30"`},
		{"bad duration in a map", "radius:\n  tags: {a: soon}\n", `config: radius.tags.a: bad duration "soon"`},
		{"bad number", "radius:\n  clients:\n    - {coa_port: many}\n", `config: radius.clients[0].coa_port: bad value "many" (want a whole number)`},
		{"bad bool", "radius:\n  clients:\n    - {strict: maybe}\n", `config: radius.clients[0].strict: bad value "maybe" (want true or false)`},
		{"mapping for a scalar", "data_dir: {a: b}\n", `config: data_dir: want a single value`},
		{"scalar for a section", "radius: on\n", `config: radius: want a mapping of keys, not "on"`},
	}
	for _, tc := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tc.in), &doc); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err := CheckNode(&doc, &testFile{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.want)
		}
	}
}
