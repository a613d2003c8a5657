package profile

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// The JSON Schemas in profiles/schema are written by hand for editors
// (yaml-language-server and the like). These tests keep them in step with
// the loader: every key the loader reads is in the schema and the other way
// round, the shipped profiles and a profile using every key pass both, and
// what the schema can express the loader rejects too.

const schemaDir = "../../profiles/schema"

func compileSchemas(t *testing.T) (cluster, node *jsonschema.Schema) {
	t.Helper()
	c := jsonschema.NewCompiler()
	var out [2]*jsonschema.Schema
	for i, name := range []string{"cluster.schema.json", "node.schema.json"} {
		f, err := os.Open(filepath.Join(schemaDir, name))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// By their $id, which node.schema.json's references resolve against.
		id := "https://github.com/magibake/magibake/profiles/schema/" + name
		if err := c.AddResource(id, doc); err != nil {
			t.Fatal(err)
		}
		if out[i], err = c.Compile(id); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return out[0], out[1]
}

// instance turns YAML into the JSON value an editor would check.
func instance(t *testing.T, y []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

const fullCluster = `name: magi
domain: cluster
subnet: 10.3.50.0/24
head_address: 10.3.50.1/24
dhcp:
  range: [10.3.50.10, 10.3.50.20]
  dns: [8.8.8.8]
  default_lease_time: 600
  max_lease_time: 7200
uplink: wlan0
home_network: 192.168.0.0/24
offline_debs: {file: debs, optional: true}
wifi:
  ssid: home
  passphrase: {env: PSK}
  country: gb
  hidden: true
user:
  name: pi
  password_hash: {file: hash, optional: true}
  ssh_authorized_keys: [{env: KEYS, optional: true}, "` + keyA + `"]
  password_login: false
base:
  url: https://downloads.example/x.img.xz
  sha256: ` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `
kubernetes: true
home_gateway: 192.168.0.1
home_dns: [192.168.0.1, 192.168.0.2]
timezone: Europe/Berlin
locale: de_DE.UTF-8
keyboard: {layout: de, model: pc105, variant: nodeadkeys, options: "ctrl:nocaps"}
config_txt: {all: [gpu_mem=16], pi4: [arm_boost=1]}
poe_fan: [50, 60, 70, 80]
packages: [htop]
upgrade: full
roles:
  head: {packages: [tcpdump], config_txt: [dtoverlay=disable-bt]}
  worker: {timezone: UTC, keyboard: us, upgrade: none}
`

const fullNode = "hostname: balthasar\nrole: worker\nmac: dc:a6:32:01:02:03\naddress: 10.3.50.2\nhome_address: 192.168.0.22\nhome_static: true\n" +
	"timezone: Europe/Paris\nlocale: fr_FR.UTF-8\nkeyboard: fr\nconfig_txt: [arm_boost=0]\npoe_fan: [45, 55, 65, 75]\npackages: [tree]\nupgrade: full\n"

// fullWorkers is a node file for several workers using every list.
const fullWorkers = `role: worker
count: 3
hostname: node{n:02}
macs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02, dc:a6:32:00:00:03]
addresses: [10.3.50.31, 10.3.50.32, 10.3.50.33]
home_addresses: [192.168.0.31, 192.168.0.32, node03.lan]
`

func TestSchemaAcceptsValidProfiles(t *testing.T) {
	clusterSchema, nodeSchema := compileSchemas(t)
	shipped, err := filepath.Glob("../../profiles/*.yaml")
	if err != nil || len(shipped) < 2 {
		t.Fatalf("shipped profiles: %v %v", shipped, err)
	}
	for _, p := range shipped {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := nodeSchema
		if filepath.Base(p) == "cluster.yaml" {
			s = clusterSchema
		}
		if err := s.Validate(instance(t, b)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for name, text := range map[string]string{"full node": fullNode, "workers": fullWorkers, "workers, no lists": "role: worker\ncount: 1\nhostname: w{n}\n"} {
		if err := nodeSchema.Validate(instance(t, []byte(text))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		fsys := fstest.MapFS{
			"cluster.yaml":   {Data: []byte(validCluster + "home_gateway: 192.168.0.1\n")},
			"caspar.yaml":    {Data: []byte("hostname: caspar\nrole: head\n")},
			"balthasar.yaml": {Data: []byte(text)},
		}
		if _, err := Load(fsys, "p", Options{Getenv: noEnv}); err != nil {
			t.Errorf("%s: loader rejects it: %v", name, err)
		}
	}
	// A base without sha256: fetch and build check it against the .sha256
	// published beside url.
	urlOnly := strings.Replace(fullCluster, "  sha256: "+strings.Repeat("0123456789abcdef", 4)+"\n", "", 1)
	if urlOnly == fullCluster {
		t.Fatal("no base.sha256 line in fullCluster")
	}
	for _, tt := range []struct{ name, cluster string }{
		{"full", fullCluster},
		{"base without sha256", urlOnly},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := clusterSchema.Validate(instance(t, []byte(tt.cluster))); err != nil {
				t.Errorf("schema rejects it: %v", err)
			}
			// The loader takes the same files.
			fsys := fstest.MapFS{
				"cluster.yaml":   {Data: []byte(tt.cluster)},
				"caspar.yaml":    {Data: []byte("hostname: caspar\nrole: head\n")},
				"balthasar.yaml": {Data: []byte(fullNode)},
			}
			env := map[string]string{"PSK": "a passphrase"}
			if _, err := Load(fsys, "full", Options{Getenv: func(k string) string { return env[k] }, FileBase: t.TempDir()}); err != nil {
				t.Errorf("loader rejects it: %v", err)
			}
		})
	}
}

// TestSchemaRejects: mistakes the schema can see are rejected by both.
func TestSchemaRejects(t *testing.T) {
	clusterSchema, nodeSchema := compileSchemas(t)
	tests := []struct {
		name     string
		file     string // "cluster", "node" or "workers" (fullWorkers as the node file)
		old, new string
	}{
		{"unknown top-level key", "cluster", "uplink: wlan0", "uplink: wlan0\nuplnk: wlan1"},
		{"unknown dhcp key", "cluster", "  dns: [8.8.8.8]", "  dns: [8.8.8.8]\n  gateway: 10.3.50.1"},
		{"subnet a list", "cluster", "subnet: 10.3.50.0/24", "subnet: [10.3.50.0/24]"},
		{"range of three", "cluster", "[10.3.50.10, 10.3.50.20]", "[10.3.50.10, 10.3.50.15, 10.3.50.20]"},
		{"lease time text", "cluster", "default_lease_time: 600", "default_lease_time: long"},
		{"env and file", "cluster", "passphrase: {env: PSK}", "passphrase: {env: PSK, file: psk}"},
		{"unknown value key", "cluster", "passphrase: {env: PSK}", "passphrase: {variable: PSK}"},
		{"hidden not bool", "cluster", "hidden: true", "hidden: sometimes"},
		{"base without url", "cluster", "  url: https://downloads.example/x.img.xz\n", ""},
		{"kubernetes not bool", "cluster", "kubernetes: true", "kubernetes: k3s"},
		{"missing user", "cluster", "user:\n  name: pi\n", "person:\n  name: pi\n"},
		{"unknown role", "node", "role: worker", "role: boss"},
		{"unknown node key", "node", "role: worker", "role: worker\nip: 10.3.50.2"},
		{"hostname upper case", "node", "hostname: balthasar", "hostname: Balthasar"},
		{"address without mac", "node", "mac: dc:a6:32:01:02:03\n", ""},
		{"pattern without count", "node", "hostname: balthasar", "hostname: balthasar{n}"},
		{"list without count", "node", "role: worker", "role: worker\nmacs: [dc:a6:32:01:02:04]"},
		{"count with head", "workers", "role: worker", "role: head"},
		{"count zero", "workers", "count: 3", "count: 0"},
		{"count too big", "workers", "count: 3", "count: 251"},
		{"count not a number", "workers", "count: 3", "count: three"},
		{"single mac with count", "workers", "count: 3", "count: 3\nmac: dc:a6:32:00:00:09"},
		{"single home address with count", "workers", "count: 3", "count: 3\nhome_address: 192.168.0.40"},
		{"pattern without {n}", "workers", "hostname: node{n:02}", "hostname: node"},
		{"unknown placeholder", "workers", "hostname: node{n:02}", "hostname: node{i}"},
		{"pattern upper case", "workers", "hostname: node{n:02}", "hostname: Node{n:02}"},
		{"addresses without macs", "workers", "macs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02, dc:a6:32:00:00:03]\n", ""},
		{"macs not a list", "workers", "macs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02, dc:a6:32:00:00:03]", "macs: dc:a6:32:00:00:01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster, node, s := fullCluster, fullNode, clusterSchema
			var text *string = &cluster
			switch tt.file {
			case "node":
				text, s = &node, nodeSchema
			case "workers":
				node = fullWorkers
				text, s = &node, nodeSchema
			}
			if !strings.Contains(*text, tt.old) {
				t.Fatalf("%q not in the %s file", tt.old, tt.file)
			}
			*text = strings.Replace(*text, tt.old, tt.new, 1)
			if err := s.Validate(instance(t, []byte(*text))); err == nil {
				t.Errorf("schema accepts it")
			}
			fsys := fstest.MapFS{
				"cluster.yaml":   {Data: []byte(cluster)},
				"caspar.yaml":    {Data: []byte("hostname: caspar\nrole: head\n")},
				"balthasar.yaml": {Data: []byte(node)},
			}
			env := map[string]string{"PSK": "a passphrase"}
			if _, err := Load(fsys, "p", Options{Getenv: func(k string) string { return env[k] }, FileBase: t.TempDir()}); err == nil {
				t.Errorf("loader accepts it")
			}
		})
	}
}

// TestSchemaKeysMatchLoader reads the keys the loader accepts straight from
// its source (the map literals passed to mapping, per function, and the
// cases of value.UnmarshalYAML) and compares them with the schema's.
func TestSchemaKeysMatchLoader(t *testing.T) {
	loader := map[string][]string{} // section -> keys
	fset := token.NewFileSet()
	for _, file := range []string{"cluster.go", "node.go", "value.go", "settings.go"} {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			section := fn.Name.Name
			ast.Inspect(fn, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "mapping" && len(n.Args) == 3 {
						arg := n.Args[2]
						// d.withSettings(p, {...}): the literal's keys and the settings'.
						if call, ok := arg.(*ast.CallExpr); ok && len(call.Args) == 2 {
							if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "withSettings" {
								arg = call.Args[1]
								loader[section] = append(loader[section], settingKeys...)
							}
						}
						if lit, ok := arg.(*ast.CompositeLit); ok {
							for _, e := range lit.Elts {
								loader[section] = append(loader[section], stringLit(t, e.(*ast.KeyValueExpr).Key))
							}
						}
					}
				case *ast.SwitchStmt:
					// switch k.Value { case "env": ... } names the keys.
					sel, ok := n.Tag.(*ast.SelectorExpr)
					if section != "UnmarshalYAML" || !ok || sel.Sel.Name != "Value" || identName(sel.X) != "k" {
						return true
					}
					for _, c := range n.Body.List {
						for _, e := range c.(*ast.CaseClause).List {
							loader["value"] = append(loader["value"], stringLit(t, e))
						}
					}
				}
				return true
			})
		}
	}
	schema := func(name string) map[string]any {
		b, err := os.ReadFile(filepath.Join(schemaDir, name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	cluster, node := schema("cluster.schema.json"), schema("node.schema.json")
	props := func(obj any) []string {
		var keys []string
		for k := range obj.(map[string]any)["properties"].(map[string]any) {
			keys = append(keys, k)
		}
		return keys
	}
	clusterProps := cluster["properties"].(map[string]any)
	valueObj := cluster["$defs"].(map[string]any)["value"].(map[string]any)["oneOf"].([]any)[1]
	pairs := []struct {
		section string
		schema  []string
	}{
		{"cluster", props(cluster)},
		{"dhcp", props(clusterProps["dhcp"])},
		{"wifi", props(clusterProps["wifi"])},
		{"user", props(clusterProps["user"])},
		{"base", props(clusterProps["base"])},
		{"node", props(node)},
		{"roles", props(clusterProps["roles"])},
		{"keyboard", props(cluster["$defs"].(map[string]any)["keyboard"].(map[string]any)["oneOf"].([]any)[1])},
		{"value", props(valueObj)},
	}
	covered := 0
	for _, p := range pairs {
		got, want := sorted(loader[p.section]), sorted(p.schema)
		if len(got) == 0 {
			t.Errorf("found no keys for %s in the loader's source", p.section)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: loader reads %v, schema has %v", p.section, got, want)
		}
		covered++
	}
	// A new mapping section in the loader needs a place in the schema too.
	if len(loader) != covered {
		var names []string
		for k := range loader {
			names = append(names, k)
		}
		t.Errorf("loader sections %v, schema test covers %d", sorted(names), covered)
	}
}

// identName names the identifier e is, or "".
func identName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func stringLit(t *testing.T, e ast.Expr) string {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		t.Fatalf("map key %T is not a string literal", e)
	}
	s, err := strconv.Unquote(b.Value)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}
