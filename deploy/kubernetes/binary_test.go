package kubernetes_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// authSecret is the Secret README.md makes from `bilancia auth init`'s
// directory.
const authSecret = "bilancia-auth"

// workload is a Deployment's or StatefulSet's pod template and what the
// other objects refer to it by.
type workload struct {
	kind, name, file string
	replicas         int
	selector         *metav1.LabelSelector
	labels           map[string]string
	pod              corev1.PodSpec
	serviceName      string // a StatefulSet's governing Service
}

func workloads(m manifests) []workload {
	var out []workload
	for _, o := range m.objects {
		w := workload{kind: o.kind, name: o.name, file: o.file, replicas: 1}
		var replicas *int32
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			replicas, w.selector, w.labels, w.pod = v.Spec.Replicas, v.Spec.Selector, v.Spec.Template.Labels, v.Spec.Template.Spec
		case *appsv1.StatefulSet:
			replicas, w.selector, w.labels, w.pod = v.Spec.Replicas, v.Spec.Selector, v.Spec.Template.Labels, v.Spec.Template.Spec
			w.serviceName = v.Spec.ServiceName
		default:
			continue
		}
		if replicas != nil {
			w.replicas = int(*replicas)
		}
		out = append(out, w)
	}
	return out
}

// imageConvention is the image scripts/docker-build tags by default.
func imageConvention(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../scripts/docker-build")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`BILANCIA_IMAGE:-([^}]+)\}`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/docker-build names no default image (${BILANCIA_IMAGE:-name:tag})")
	}
	return string(m[1])
}

// dockerfile is the image's entrypoint and user.
func dockerfile(t *testing.T) (entrypoint string, user int64) {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	e := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]$`).FindSubmatch(b)
	u := regexp.MustCompile(`(?m)^USER (\d+):\d+$`).FindSubmatch(b)
	if e == nil || u == nil {
		t.Fatal("the Dockerfile has no ENTRYPOINT [\"...\"] or USER uid:gid")
	}
	for _, c := range u[1] {
		user = user*10 + int64(c-'0')
	}
	return string(e[1]), user
}

// runs are the command lines the container runs with the binary: its
// args, its probes' and its hooks' exec commands, each without the
// entrypoint, with what runs it.
func runs(t *testing.T, c corev1.Container, entrypoint string) map[string][]string {
	t.Helper()
	out := map[string][]string{"args": c.Args}
	exe := func(what string, h *corev1.ExecAction) {
		if h == nil {
			return
		}
		if len(h.Command) == 0 || h.Command[0] != entrypoint {
			t.Errorf("%s runs %q; want the image's %s: it has no shell or other tool", what, h.Command, entrypoint)
			return
		}
		out[what] = h.Command[1:]
	}
	for what, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if p != nil {
			exe(what, p.Exec)
		}
	}
	if l := c.Lifecycle; l != nil {
		if l.PreStop != nil {
			exe("preStop", l.PreStop.Exec)
		}
		if l.PostStart != nil {
			exe("postStart", l.PostStart.Exec)
		}
	}
	return out
}

// help runs bilancia with argv and --help: its parser refuses an unknown
// command, flag or choice and a value of the wrong type (a duration, a
// number, a file that must exist) before it prints the help.
func help(t *testing.T, argv []string) string {
	t.Helper()
	cmd := exec.Command(bin, append(slices.Clone(argv), "--help")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("bilancia %s --help: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

var (
	helpFlag = regexp.MustCompile(`^\s+(?:-\w, )?--(?:\[no-\])?([a-z0-9][a-z0-9-]*)`)
	helpEnvs = regexp.MustCompile(`\((\$[A-Z][A-Z0-9_]*(?:,\s+\$[A-Z][A-Z0-9_]*)*)\)\.?\s*$`)
)

// choices are the words the binary's shell completion offers after words:
// a command's subcommands, an enum's values; none for a free value (and,
// in an empty directory, none for a file).
func choices(t *testing.T, words []string) []string {
	t.Helper()
	line := "bilancia " + strings.Join(words, " ") + " "
	if c, ok := choicesOf[line]; ok {
		return c
	}
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "COMP_LINE=" + line, "COMP_POINT=" + strconv.Itoa(len(line))}
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("completing %q: %v", line, err)
	}
	choicesOf[line] = strings.Fields(string(out))
	return choicesOf[line]
}

// choicesOf keeps what choices found, by command line (the tests that
// call it do not run in parallel).
var choicesOf = map[string][]string{}

// checkChoices: each word of argv that the binary completes from a closed
// set (a command, a positional choice, an enum flag's value given as
// --flag=value) is one of that set; the parser checks those only when a
// command runs, after --help.
func checkChoices(t *testing.T, what string, argv []string) {
	t.Helper()
	var words []string // the commands and positional arguments so far
	for _, a := range argv {
		flag, value, isFlag := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch {
		case !strings.HasPrefix(a, "-"):
			if c := choices(t, words); len(c) > 0 && !slices.Contains(c, a) {
				t.Errorf("%s: bilancia %s: %q is none of %q", what, strings.Join(words, " "), a, c)
			}
			words = append(words, a)
		case isFlag:
			if c := choices(t, append(slices.Clone(words), "--"+flag)); len(c) > 0 && !slices.Contains(c, value) {
				t.Errorf("%s: bilancia %s --%s=%s: %q is none of %q", what, strings.Join(words, " "), flag, value, value, c)
			}
		}
	}
}

// commands are the words of argv before its first flag.
func commands(argv []string) []string {
	i := slices.IndexFunc(argv, func(a string) bool { return strings.HasPrefix(a, "-") })
	if i < 0 {
		return slices.Clone(argv)
	}
	return slices.Clone(argv[:i])
}

// helpEnv maps each variable a command's help names to its flag.
func helpEnv(help string) map[string]string {
	out := map[string]string{}
	var flag, text string
	flush := func() {
		if m := helpEnvs.FindStringSubmatch(text); flag != "" && m != nil {
			for _, v := range strings.Split(m[1], ",") {
				out[strings.TrimPrefix(strings.TrimSpace(v), "$")] = flag
			}
		}
	}
	for _, line := range strings.Split(help, "\n") {
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			flush()
			flag, text = m[1], line
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			flag, text = "", ""
			continue
		}
		text += " " + strings.TrimSpace(line)
	}
	flush()
	return out
}

// given tells whether argv sets flag.
func given(argv []string, flag string) bool {
	for _, a := range argv {
		if a == "--"+flag || strings.HasPrefix(a, "--"+flag+"=") || a == "--no-"+flag {
			return true
		}
	}
	return false
}

// secretFiles are the files a volume holds, by path in it, each with its
// source in authDir; only the Secret bilancia-auth is expected.
func secretFiles(t *testing.T, pod corev1.PodSpec, volume string) map[string]string {
	t.Helper()
	all, err := os.ReadDir(authDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	add := func(name string, items []corev1.KeyToPath, mode *int32) {
		if name != authSecret {
			t.Errorf("volume %s holds Secret %q; want %s, which README.md makes", volume, name, authSecret)
			return
		}
		if mode == nil || *mode&0o040 == 0 {
			t.Errorf("volume %s: defaultMode must let the group (fsGroup, the image's user) read the credentials", volume)
		}
		if len(items) == 0 {
			for _, e := range all {
				if e.Type().IsRegular() { // kubectl create secret --from-file=DIR takes these
					out[e.Name()] = filepath.Join(authDir, e.Name())
				}
			}
			return
		}
		for _, it := range items {
			src := filepath.Join(authDir, it.Key)
			if st, err := os.Stat(src); err != nil || !st.Mode().IsRegular() {
				t.Errorf("volume %s: key %q is none of the files bilancia auth init writes", volume, it.Key)
			}
			out[it.Path] = src
		}
	}
	for _, v := range pod.Volumes {
		if v.Name != volume {
			continue
		}
		switch {
		case v.Secret != nil:
			add(v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret == nil {
					t.Errorf("volume %s projects something other than a Secret", volume)
					continue
				}
				add(s.Secret.Name, s.Secret.Items, v.Projected.DefaultMode)
			}
		default:
			t.Errorf("volume %s is neither a Secret nor a projected one: the roles need no other", volume)
		}
		return out
	}
	t.Errorf("no volume %s", volume)
	return out
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o400)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

// TestContainersRunTheBinary: every container runs the image of
// scripts/docker-build, and every command line it runs (its args, probes
// and hooks) parses with the binary's own parser, flags, choices and
// values, the files they name being those its volumes hold; every
// variable it sets is read by a flag of one of those commands, with a
// value that parses too.
func TestContainersRunTheBinary(t *testing.T) {
	m := load(t)
	image := imageConvention(t)
	entrypoint, _ := dockerfile(t)
	for _, w := range workloads(m) {
		if len(w.pod.InitContainers) > 0 {
			t.Errorf("%s %s has init containers: the image has nothing for them to run but bilancia", w.kind, w.name)
		}
		for _, c := range w.pod.Containers {
			t.Run(w.name+"/"+c.Name, func(t *testing.T) {
				checkContainer(t, w, c, image, entrypoint)
			})
		}
	}
}

func checkContainer(t *testing.T, w workload, c corev1.Container, image, entrypoint string) {
	if c.Image != image {
		t.Errorf("image %q; want %q, scripts/docker-build's (kustomization.yaml's images: points it elsewhere)", c.Image, image)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("imagePullPolicy %q; want IfNotPresent", c.ImagePullPolicy)
	}
	if len(c.Command) > 0 {
		t.Errorf("command %q replaces the image's entrypoint; give args", c.Command)
	}
	// The files of the volumes, under a root of the test's.
	root := t.TempDir()
	var mounts []string // mount paths, longest first
	for _, vm := range c.VolumeMounts {
		if !vm.ReadOnly {
			t.Errorf("volume %s is mounted writable; the roles write nothing", vm.Name)
		}
		for path, src := range secretFiles(t, w.pod, vm.Name) {
			copyFile(t, src, filepath.Join(root, vm.MountPath, path))
		}
		mounts = append(mounts, vm.MountPath)
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	local := func(s string) string {
		for _, mp := range mounts {
			re := regexp.MustCompile(`(^|=|,)` + regexp.QuoteMeta(mp) + `(/|$|,)`)
			s = re.ReplaceAllString(s, "${1}"+filepath.Join(root, mp)+"${2}")
		}
		return s
	}

	env := map[string]string{}
	podName := w.name + "-0"
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = podName
		default:
			t.Errorf("variable %s comes from somewhere other than a value or the pod's name", e.Name)
		}
	}
	if len(c.EnvFrom) > 0 {
		t.Error("envFrom: the variables must be listed, to be checked")
	}

	read := map[string]bool{}
	for what, argv := range runs(t, c, entrypoint) {
		if len(argv) == 0 {
			t.Errorf("%s runs bilancia with no command", what)
			continue
		}
		argv = slices.Clone(argv)
		for i := range argv {
			argv[i] = local(argv[i])
		}
		flags := helpEnv(help(t, argv))
		checkChoices(t, what, argv)
		var fromEnv []string
		for name, value := range env {
			flag, ok := flags[name]
			if !ok {
				continue
			}
			read[name] = true
			if !given(argv, flag) {
				fromEnv = append(fromEnv, "--"+flag+"="+local(value))
			}
		}
		slices.Sort(fromEnv)
		if len(fromEnv) > 0 {
			help(t, append(argv, fromEnv...))
			checkChoices(t, what+" with the variables", append(commands(argv), fromEnv...))
		}
	}
	for name := range env {
		if !read[name] {
			t.Errorf("variable %s: no flag of the commands this container runs reads it", name)
		}
	}
}

// TestHelpEnv: the help's variables are read as the flags' (the other
// tests would pass on a help they no longer understand).
func TestHelpEnv(t *testing.T) {
	got := helpEnv(help(t, []string{"health", "worker"}))
	for name, flag := range map[string]string{
		"BILANCIA_HEALTH_WORKER_ID": "id", "BILANCIA_NATS": "nats", "NATS_URL": "nats",
		"BILANCIA_NKEY": "nkey", "BILANCIA_HEALTH_WORKER_SEEN_BY": "seen-by",
	} {
		if got[name] != flag {
			t.Errorf("helpEnv(health worker --help)[%s] = %q; want %q", name, got[name], flag)
		}
	}
	if got := helpEnv(help(t, []string{"dispatcher"})); got["BILANCIA_DISPATCHER_LOG_REQUESTS"] != "log-requests" || got["GOMAXPROCS"] != "" {
		t.Errorf("helpEnv(dispatcher --help): log-requests %q, GOMAXPROCS %q; want log-requests and none",
			got["BILANCIA_DISPATCHER_LOG_REQUESTS"], got["GOMAXPROCS"])
	}
}
