package kubernetes_test

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// portFlags are the flags that open a listening port, by command.
var portFlags = map[string][]string{"broker": {"port", "cluster-port", "http-port"}}

// flagValue is the value of --name=value in argv.
func flagValue(argv []string, name string) (string, bool) {
	for _, a := range argv {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// selects tells whether sel picks the pods of w.
func selects(t *testing.T, sel *metav1.LabelSelector, w workload) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(w.labels))
}

func services(m manifests) []*corev1.Service {
	var out []*corev1.Service
	for _, o := range m.objects {
		if s, ok := o.obj.(*corev1.Service); ok {
			out = append(out, s)
		}
	}
	return out
}

// containerPort resolves a port by name or number among c's.
func containerPort(c corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// TestPortsAndProbes: each port a container declares is one its command
// opens with a flag, beyond loopback; each port a flag opens is declared;
// every container has readiness and liveness probes, which run bilancia
// health or ask /healthz on the port --http-port opens, as bilancia
// health broker --url does.
func TestPortsAndProbes(t *testing.T) {
	m := load(t)
	for _, w := range workloads(m) {
		for _, c := range w.pod.Containers {
			if len(c.Args) == 0 {
				t.Errorf("%s/%s has no args", w.name, c.Name)
				continue
			}
			opened := map[int32]string{}
			for _, f := range portFlags[c.Args[0]] {
				v, ok := flagValue(c.Args, f)
				if !ok {
					continue
				}
				n, err := strconv.Atoi(v)
				if err != nil || n <= 0 {
					t.Errorf("%s/%s: --%s=%s; want a fixed port for the Services and probes", w.name, c.Name, f, v)
					continue
				}
				opened[int32(n)] = f
			}
			if len(opened) > 0 {
				for _, f := range []string{"host", "cluster-host"} {
					if v, _ := flagValue(c.Args, f); v != "0.0.0.0" {
						t.Errorf("%s/%s: --%s=%q; want 0.0.0.0: the pod's other addresses must reach its ports", w.name, c.Name, f, v)
					}
				}
			}
			for _, cp := range c.Ports {
				if _, ok := opened[cp.ContainerPort]; !ok || cp.Name == "" {
					t.Errorf("%s/%s: port %q %d is not one a flag opens (or has no name)", w.name, c.Name, cp.Name, cp.ContainerPort)
				}
			}
			for n, f := range opened {
				if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == n }) {
					t.Errorf("%s/%s: --%s=%d is not among the container's ports", w.name, c.Name, f, n)
				}
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s/%s: want a readiness and a liveness probe", w.name, c.Name)
			}
			for what, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
				switch {
				case p == nil:
				case p.Exec != nil:
					if len(p.Exec.Command) < 3 || p.Exec.Command[1] != "health" {
						t.Errorf("%s/%s: %s runs %q; want bilancia health", w.name, c.Name, what, p.Exec.Command)
					}
					// bilancia health gives up after its --timeout.
					if p.TimeoutSeconds <= 3 {
						t.Errorf("%s/%s: %s times out after %ds; want more than bilancia health's own 3s", w.name, c.Name, what, p.TimeoutSeconds)
					}
				case p.HTTPGet != nil:
					cp, ok := containerPort(c, p.HTTPGet.Port)
					if !ok || opened[cp.ContainerPort] != "http-port" || p.HTTPGet.Path != "/healthz" {
						t.Errorf("%s/%s: %s asks %s on port %s; want /healthz on the port of --http-port", w.name, c.Name, what, p.HTTPGet.Path, p.HTTPGet.Port.String())
					}
				default:
					t.Errorf("%s/%s: %s is neither bilancia health nor /healthz", w.name, c.Name, what)
				}
			}
		}
	}
}

// TestServicesAndURLs: every Service picks one workload and targets ports
// its containers declare; a StatefulSet's serviceName is a headless Service
// of its own; every NATS URL the roles are given (--nats, BILANCIA_NATS)
// reaches the brokers' client port through a Service, and --routes names
// every broker of the StatefulSet on its route port.
func TestServicesAndURLs(t *testing.T) {
	m := load(t)
	ws := workloads(m)
	svcs := map[string]*corev1.Service{}
	target := map[string]workload{}
	for _, s := range services(m) {
		svcs[s.Name] = s
		var picked []workload
		for _, w := range ws {
			if selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w) {
				picked = append(picked, w)
			}
		}
		if len(picked) != 1 {
			t.Errorf("Service %s picks %d workloads; want 1", s.Name, len(picked))
			continue
		}
		target[s.Name] = picked[0]
		for _, sp := range s.Spec.Ports {
			if _, ok := containerPort(picked[0].pod.Containers[0], sp.TargetPort); !ok || sp.TargetPort.Type != intstr.String {
				t.Errorf("Service %s: port %s targets %s, which is no named port of %s", s.Name, sp.Name, sp.TargetPort.String(), picked[0].name)
			}
		}
	}
	for _, w := range ws {
		if w.kind != "StatefulSet" {
			continue
		}
		s := svcs[w.serviceName]
		if s == nil || s.Spec.ClusterIP != corev1.ClusterIPNone || target[s.Name].name != w.name {
			t.Errorf("StatefulSet %s: serviceName %q is no headless Service of its pods", w.name, w.serviceName)
		}
	}

	// resolve takes a URL to the workload and container port it reaches.
	resolve := func(u *url.URL) (workload, int32, bool) {
		host, podOf := u.Hostname(), ""
		if pod, svc, ok := strings.Cut(host, "."); ok {
			host, podOf = svc, pod
		}
		s := svcs[host]
		if s == nil {
			return workload{}, 0, false
		}
		w := target[s.Name]
		if podOf != "" {
			i := strings.TrimPrefix(podOf, w.name+"-")
			n, err := strconv.Atoi(i)
			if s.Spec.ClusterIP != corev1.ClusterIPNone || w.kind != "StatefulSet" || err != nil || n < 0 || n >= w.replicas {
				return workload{}, 0, false
			}
		}
		for _, sp := range s.Spec.Ports {
			if strconv.Itoa(int(sp.Port)) == u.Port() {
				cp, ok := containerPort(w.pod.Containers[0], sp.TargetPort)
				return w, cp.ContainerPort, ok
			}
		}
		return workload{}, 0, false
	}
	// mustReach: every URL of list reaches a port the target opens with flag.
	mustReach := func(where, list, flag string) []string {
		var pods []string
		for _, raw := range strings.Split(list, ",") {
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "nats" {
				t.Errorf("%s: %q is no nats:// URL", where, raw)
				continue
			}
			w, port, ok := resolve(u)
			if !ok {
				t.Errorf("%s: %s reaches no port of the manifests' Services", where, raw)
				continue
			}
			if v, _ := flagValue(w.pod.Containers[0].Args, flag); v != strconv.Itoa(int(port)) {
				t.Errorf("%s: %s reaches port %d of %s; want the port of its --%s (%s)", where, raw, port, w.name, flag, v)
			}
			pods = append(pods, u.Hostname())
		}
		return pods
	}
	brokers := 0
	for _, w := range ws {
		c := w.pod.Containers[0]
		for _, e := range c.Env {
			if e.Name == "BILANCIA_NATS" || e.Name == "NATS_URL" {
				mustReach(w.name+" "+e.Name, e.Value, "port")
			}
		}
		for _, argv := range runs(t, c, "/bilancia") {
			if v, ok := flagValue(argv, "nats"); ok {
				mustReach(w.name+" --nats", v, "port")
			}
		}
		if v, ok := flagValue(c.Args, "routes"); ok {
			brokers++
			pods := mustReach(w.name+" --routes", v, "cluster-port")
			for i := range w.replicas {
				want := w.name + "-" + strconv.Itoa(i) + "." + w.serviceName
				if !slices.Contains(pods, want) {
					t.Errorf("%s --routes leaves out %s: a scaled StatefulSet needs its routes listed", w.name, want)
				}
			}
		}
	}
	if brokers != 1 {
		t.Errorf("%d workloads run routed brokers; want 1", brokers)
	}
}

// TestDisruptionAndStop: every workload has one PodDisruptionBudget; a
// broker's preStop puts it in lame duck mode and its grace period covers
// --lame-duck-duration; the others drain on SIGTERM within theirs.
func TestDisruptionAndStop(t *testing.T) {
	m := load(t)
	var pdbs []*policyv1.PodDisruptionBudget
	for _, o := range m.objects {
		if p, ok := o.obj.(*policyv1.PodDisruptionBudget); ok {
			pdbs = append(pdbs, p)
		}
	}
	for _, w := range workloads(m) {
		n := 0
		for _, p := range pdbs {
			if selects(t, p.Spec.Selector, w) {
				n++
				if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
					t.Errorf("PodDisruptionBudget %s allows anything", p.Name)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s %s: %d PodDisruptionBudgets; want 1", w.kind, w.name, n)
		}
		if !selects(t, w.selector, w) {
			t.Errorf("%s %s: its selector does not pick its own pods", w.kind, w.name)
		}
		grace := time.Duration(*w.pod.TerminationGracePeriodSeconds) * time.Second
		c := w.pod.Containers[0]
		var pre []string
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
			pre = c.Lifecycle.PreStop.Exec.Command
		}
		if c.Args[0] == "broker" {
			if !slices.Equal(pre, []string{"/bilancia", "signal", "ldm"}) {
				t.Errorf("%s: preStop %q; want [/bilancia signal ldm], lame duck mode", w.name, pre)
			}
			v, _ := flagValue(c.Args, "lame-duck-duration")
			d, err := time.ParseDuration(v)
			if err != nil || grace <= d {
				t.Errorf("%s: terminationGracePeriodSeconds %v; want more than --lame-duck-duration=%s", w.name, grace, v)
			}
			if w.pod.ShareProcessNamespace != nil && *w.pod.ShareProcessNamespace {
				t.Errorf("%s: shareProcessNamespace: signal ldm's process 1 would be the pause container", w.name)
			}
			continue
		}
		if pre != nil {
			t.Errorf("%s: preStop %q; want none: SIGTERM drains it (a ctl drain would outlive the pod)", w.name, pre)
		}
		// A role drains for at most 30 s on SIGTERM (README's signals).
		if grace <= 30*time.Second {
			t.Errorf("%s: terminationGracePeriodSeconds %v; want more than the 30s a role drains", w.name, grace)
		}
	}
}

// TestPodSecurity: the pods run as the image's user, which reads the
// Secret through fsGroup, with no service links: a Service named
// bilancia-broker would set BILANCIA_BROKER_PORT=tcp://..., broker --port's
// own variable.
func TestPodSecurity(t *testing.T) {
	m := load(t)
	_, user := dockerfile(t)
	link := regexp.MustCompile(`[^A-Z0-9]+`)
	var linked []string
	for _, s := range services(m) {
		linked = append(linked, link.ReplaceAllString(strings.ToUpper(s.Name), "_")+"_PORT")
	}
	for _, w := range workloads(m) {
		p := w.pod
		if p.EnableServiceLinks == nil || *p.EnableServiceLinks {
			t.Errorf("%s: enableServiceLinks must be false: the Services would set %v", w.name, linked)
		}
		sc := p.SecurityContext
		if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != user || sc.FSGroup == nil || *sc.FSGroup != user ||
			sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: want runAsNonRoot, runAsUser and fsGroup %d, the Dockerfile's USER", w.name, user)
		}
		if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken: the roles never talk to the API server", w.name)
		}
		for _, c := range p.Containers {
			cs := c.SecurityContext
			if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
				cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
				t.Errorf("%s/%s: want a read-only root and no privilege escalation", w.name, c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: want a CPU request and a memory limit", w.name, c.Name)
			}
		}
	}
}

// TestKustomizeImage: kustomization.yaml's images entry is the image the
// containers name, so that pointing it at a registry moves every one.
func TestKustomizeImage(t *testing.T) {
	m := load(t)
	name, tag, _ := strings.Cut(imageConvention(t), ":")
	if len(m.k.Images) != 1 || m.k.Images[0].Name != name || m.k.Images[0].NewTag != tag {
		t.Errorf("kustomization.yaml images: %+v; want one entry for %s, newTag %s", m.k.Images, name, tag)
	}
}
