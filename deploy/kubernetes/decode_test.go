// Package kubernetes_test checks the manifests of deploy/kubernetes
// without a cluster: each decodes strictly into the Kubernetes API types,
// and every image, command, flag, variable, port and credential they name
// is one the binary and the image have.
package kubernetes_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// bin is bilancia, built once; authDir holds the credentials `bilancia
// auth init` makes, the files of the Secret bilancia-auth.
var bin, authDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bilancia-kubernetes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "bilancia")
	build := exec.Command("go", "build", "-o", bin, "github.com/bilancia/bilancia/cmd/bilancia")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	authDir = filepath.Join(dir, "auth")
	if out, err := exec.Command(bin, "auth", "init", "--dir", authDir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bilancia auth init: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// kinds are the objects the manifests may hold, each with its apiVersion.
var kinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Namespace":           {"v1", func() any { return &corev1.Namespace{} }},
	"Service":             {"v1", func() any { return &corev1.Service{} }},
	"StatefulSet":         {"apps/v1", func() any { return &appsv1.StatefulSet{} }},
	"Deployment":          {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"PodDisruptionBudget": {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
}

// object is one decoded document of a manifest.
type object struct {
	file, kind, name string
	obj              any
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode reads every document of a manifest strictly into its API type:
// an unknown field, a duplicate one, a value of the wrong type or a key
// spelt in another case (which encoding/json alone would let through)
// fails, as the API server would refuse it.
func decode(file string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(data), -1) {
		var generic map[string]any
		if err := yaml.Unmarshal([]byte(doc), &generic); err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", file, i+1, err)
		}
		if generic == nil {
			continue // comments only
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", file, i+1, err)
		}
		k, ok := kinds[tm.Kind]
		if !ok {
			return nil, fmt.Errorf("%s, document %d: kind %q is none of the kinds this test knows", file, i+1, tm.Kind)
		}
		if tm.APIVersion != k.apiVersion {
			return nil, fmt.Errorf("%s: %s %s has apiVersion %q; want %q", file, tm.Kind, tm.Metadata.Name, tm.APIVersion, k.apiVersion)
		}
		obj := k.new()
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", file, tm.Kind, tm.Metadata.Name, err)
		}
		if err := sameKeys(generic, obj); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", file, tm.Kind, tm.Metadata.Name, err)
		}
		if tm.Metadata.Name == "" {
			return nil, fmt.Errorf("%s, document %d: %s without a name", file, i+1, tm.Kind)
		}
		out = append(out, object{file, tm.Kind, tm.Metadata.Name, obj})
	}
	return out, nil
}

// sameKeys fails where a key of the document is known to the type only in
// another case: encoding/json matches keys without case, the API server
// does not.
func sameKeys(doc map[string]any, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	var typed map[string]any
	if err := json.Unmarshal(b, &typed); err != nil {
		return err
	}
	return compareKeys("", doc, typed)
}

func compareKeys(path string, doc, typed any) error {
	switch d := doc.(type) {
	case map[string]any:
		t, _ := typed.(map[string]any)
		for k, v := range d {
			tv, ok := t[k]
			if !ok {
				for tk := range t {
					if strings.EqualFold(tk, k) {
						return fmt.Errorf("%s.%s: unknown field (the API has %s)", path, k, tk)
					}
				}
				continue // a zero value the type leaves out
			}
			if err := compareKeys(path+"."+k, v, tv); err != nil {
				return err
			}
		}
	case []any:
		t, _ := typed.([]any)
		for i, v := range d {
			if i < len(t) {
				if err := compareKeys(fmt.Sprintf("%s[%d]", path, i), v, t[i]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// kustomization is the part of kustomize's Kustomization the manifests
// use; a field beyond it fails the strict decoding, so that a new one is
// looked at here first.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images"`
}

// manifests are the objects of every resource kustomization.yaml lists.
type manifests struct {
	k       kustomization
	objects []object
}

func load(t *testing.T) manifests {
	t.Helper()
	var m manifests
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &m.k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if m.k.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml is a %s %s; want a kustomize.config.k8s.io/v1beta1 Kustomization", m.k.APIVersion, m.k.Kind)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f != "kustomization.yaml" && !slices.Contains(m.k.Resources, f) {
			t.Errorf("%s is not among kustomization.yaml's resources: kubectl apply -k would leave it out", f)
		}
	}
	for _, f := range m.k.Resources {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", f, err)
		}
		objs, err := decode(f, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no object", f)
		}
		m.objects = append(m.objects, objs...)
	}
	seen := map[string]bool{}
	for _, o := range m.objects {
		if key := o.kind + "/" + o.name; seen[key] {
			t.Errorf("%s: a second %s", o.file, key)
		} else {
			seen[key] = true
		}
	}
	return m
}

// TestManifestsDecodeStrictly: every document of every resource decodes
// into its API type with nothing left over.
func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	counts := map[string]int{}
	for _, o := range m.objects {
		counts[o.kind]++
	}
	for kind, want := range map[string]int{"Namespace": 1, "StatefulSet": 2, "Deployment": 1, "PodDisruptionBudget": 3} {
		if counts[kind] != want {
			t.Errorf("%d %s objects; want %d", counts[kind], kind, want)
		}
	}
	var ns string
	for _, o := range m.objects {
		if o.kind == "Namespace" {
			ns = o.name
		}
	}
	if m.k.Namespace != ns {
		t.Errorf("kustomization.yaml puts the objects in namespace %q; the Namespace is %q", m.k.Namespace, ns)
	}
}

// TestStrictDecodingRefuses: the decoding the other tests rely on fails
// on a field the API does not have, one spelt in another case, a value of
// the wrong type and a key given twice, and passes the file unchanged.
func TestStrictDecodingRefuses(t *testing.T) {
	data, err := os.ReadFile("broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decode("broker.yaml", data); err != nil {
		t.Fatalf("broker.yaml as it is: %v", err)
	}
	for _, tc := range []struct{ name, old, new string }{
		{"unknown field", "          readinessProbe:", "          readinesProbe:"},
		{"unknown field in a StatefulSet's spec", "  podManagementPolicy: Parallel", "  podManagementPolicy: Parallel\n  minReadySecond: 5"},
		{"field in another case", "  replicas: 3", "  Replicas: 3"},
		{"wrong type", "  replicas: 3", "  replicas: three"},
		{"duplicate key", "  replicas: 3", "  replicas: 3\n  replicas: 4"},
		{"unknown kind", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets"},
		{"wrong apiVersion", "apiVersion: policy/v1", "apiVersion: policy/v1beta1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(data, []byte(tc.old)) {
				t.Fatalf("broker.yaml has no %q any more: pick another line", tc.old)
			}
			bad := bytes.Replace(data, []byte(tc.old), []byte(tc.new), 1)
			if _, err := decode("broker.yaml", bad); err == nil {
				t.Errorf("broker.yaml with %q for %q decoded without an error", tc.new, tc.old)
			} else {
				t.Log(err)
			}
		})
	}
	var k kustomization
	if err := yaml.UnmarshalStrict([]byte("resources: [a.yaml]\nresource: [b.yaml]\n"), &k); err == nil {
		t.Error("a kustomization with an unknown field decoded without an error")
	}
}
