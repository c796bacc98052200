package charts

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kubeVersion is the Kubernetes release whose OpenAPI spec the schemas are
// generated from (the one scripts/install-kube-testenv.sh builds).
const kubeVersion = "v1.37.2"

// swaggerPath finds k8s.io/kubernetes' api/openapi-spec/swagger.json
// through the Go module cache (downloading the module if needed).
func swaggerPath(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+kubeVersion)
	cmd.Dir = t.TempDir() // outside any module
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("SKIP: no Kubernetes OpenAPI spec: go mod download k8s.io/kubernetes@%s: %v", kubeVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Skipf("SKIP: no Kubernetes OpenAPI spec: go mod download gave %s", out)
	}
	return filepath.Join(mod.Dir, "api", "openapi-spec", "swagger.json")
}

// schemaGen turns the swagger definitions into kubeconform's standalone
// strict JSON schemas: every $ref inlined, additionalProperties false on
// every object with properties (as kubectl validates), int-or-string and
// quantities accepting both of their JSON forms.
type schemaGen struct {
	defs map[string]map[string]any
}

func loadSchemaGen(t *testing.T, path string) *schemaGen {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &schemaGen{defs: spec.Definitions}
}

// fileName is kubeconform's "{{ .ResourceKind }}{{ .KindSuffix }}.json".
func fileName(apiVersion, kind string) string {
	group, version, found := strings.Cut(apiVersion, "/")
	suffix := "-" + strings.ToLower(apiVersion)
	if found {
		first, _, _ := strings.Cut(group, ".")
		suffix = "-" + strings.ToLower(first) + "-" + strings.ToLower(version)
	}
	return strings.ToLower(kind) + suffix + ".json"
}

// write writes the schema of apiVersion/kind into dir; false if the spec
// has no such kind.
func (g *schemaGen) write(dir, apiVersion, kind string) (bool, error) {
	group, version, found := strings.Cut(apiVersion, "/")
	if !found {
		group, version = "", apiVersion
	}
	for name, def := range g.defs {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, x := range gvks {
			m, _ := x.(map[string]any)
			if m["group"] == group && m["version"] == version && m["kind"] == kind {
				schema := g.expand(def, map[string]bool{name: true})
				b, err := json.Marshal(schema)
				if err != nil {
					return false, err
				}
				return true, os.WriteFile(filepath.Join(dir, fileName(apiVersion, kind)), b, 0o644)
			}
		}
	}
	return false, nil
}

const (
	quantityDef = "io.k8s.apimachinery.pkg.api.resource.Quantity"
	refPrefix   = "#/definitions/"
)

// expand inlines v's references; a reference already on the path (a
// recursive type) becomes an open schema.
func (g *schemaGen) expand(v any, path map[string]bool) any {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, refPrefix)
			if name == quantityDef {
				return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
			}
			def, ok := g.defs[name]
			if !ok {
				panic(fmt.Sprintf("swagger: no definition %q", name))
			}
			if path[name] {
				return map[string]any{}
			}
			path[name] = true
			out := g.expand(def, path)
			delete(path, name)
			return out
		}
		if x["format"] == "int-or-string" {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		}
		out := make(map[string]any, len(x)+1)
		for k, val := range x {
			switch k {
			case "description", "x-kubernetes-group-version-kind":
				continue // size only
			case "properties":
				props := map[string]any{}
				for pk, pv := range val.(map[string]any) {
					props[pk] = g.expand(pv, path)
				}
				out[k] = props
				continue
			}
			out[k] = g.expand(val, path)
		}
		if _, has := x["properties"]; has {
			if _, set := x["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = g.expand(e, path)
		}
		return out
	}
	return v
}

func TestFileName(t *testing.T) {
	for _, tc := range []struct{ apiVersion, kind, want string }{
		{"v1", "Service", "service-v1.json"},
		{"apps/v1", "Deployment", "deployment-apps-v1.json"},
		{"rbac.authorization.k8s.io/v1", "ClusterRole", "clusterrole-rbac-v1.json"},
		{"admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "mutatingwebhookconfiguration-admissionregistration-v1.json"},
	} {
		if got := fileName(tc.apiVersion, tc.kind); got != tc.want {
			t.Errorf("fileName(%s, %s) = %s, want %s", tc.apiVersion, tc.kind, got, tc.want)
		}
	}
}
