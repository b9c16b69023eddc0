package kubernetes_test

import (
	"path/filepath"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/bilancia/bilancia/broker"
)

// mounted are the credential files container c of w sees, by path in the
// container, each with its source under authDir.
func mounted(t *testing.T, w workload, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, vm := range c.VolumeMounts {
		for path, src := range secretFiles(t, w.pod, vm.Name) {
			out[filepath.Join(vm.MountPath, path)] = src
		}
	}
	return out
}

// TestCredentials: each role's pods hold only their role's credentials.
// Every worker pod connects with its own, workers/POD.nk, which acts for
// its id alone, and its probes use that one too (no dispatcher's or
// admin's credential in its pod); every broker's --auth directory holds
// every worker pod's credential at workers/POD.nk, as --auth reads them,
// beside the files of bilancia auth init.
func TestCredentials(t *testing.T) {
	m := load(t)
	ws := workloads(m)
	var brokers []workload
	for _, w := range ws {
		if w.pod.Containers[0].Args[0] == "broker" {
			brokers = append(brokers, w)
		}
	}
	if len(brokers) == 0 {
		t.Fatal("no broker")
	}
	workersDir := filepath.Join(authDir, broker.WorkersDir)
	pods := 0
	for _, w := range ws {
		c := w.pod.Containers[0]
		files := mounted(t, w, c)
		switch c.Args[0] {
		case "broker":
			v, ok := flagValue(c.Args, "auth")
			if !ok {
				t.Errorf("%s: no --auth", w.name)
				continue
			}
			for _, f := range []string{broker.ClientCredential, broker.WorkerCredential, broker.DispatcherCredential, broker.AdminCredential, broker.RouteSecret} {
				if files[filepath.Join(v, f)] != filepath.Join(authDir, f) {
					t.Errorf("%s: --auth=%s holds no %s of bilancia auth init", w.name, v, f)
				}
			}
		case "dispatcher":
			for path, src := range files {
				if src != filepath.Join(authDir, broker.DispatcherCredential) {
					t.Errorf("%s: %s (%s) is mounted; a dispatcher needs only %s", w.name, path, filepath.Base(src), broker.DispatcherCredential)
				}
			}
		case "worker":
			for path, src := range files {
				if filepath.Dir(src) != workersDir {
					t.Errorf("%s: %s (%s) is mounted; a worker needs only its own credential, of %s", w.name, path, filepath.Base(src), workersSecret)
				}
			}
			if w.kind != "StatefulSet" {
				t.Errorf("%s is a %s: a worker's credential names its id, which only a StatefulSet's pod keeps", w.name, w.kind)
				continue
			}
			for i := range w.replicas {
				pods++
				checkWorkerPod(t, w, c, w.name+"-"+strconv.Itoa(i), files, brokers)
			}
		}
	}
	if pods == 0 {
		t.Error("no worker pod")
	}
}

// checkWorkerPod: pod's worker and probes connect with workers/pod.nk,
// which acts for pod alone, and each broker holds it.
func checkWorkerPod(t *testing.T, w workload, c corev1.Container, pod string, files map[string]string, brokers []workload) {
	t.Helper()
	env := podEnv(t, c, pod)
	if env["BILANCIA_WORKER_ID"] != pod {
		t.Errorf("%s: BILANCIA_WORKER_ID %q; want the pod's name", pod, env["BILANCIA_WORKER_ID"])
	}
	for what, argv := range runs(t, c, "/bilancia") {
		if given(argv, "nkey") {
			t.Errorf("%s: %s gives --nkey; want BILANCIA_NKEY's own credential for the worker and its probes alike", pod, what)
		}
	}
	nkey := env["BILANCIA_NKEY"]
	src, ok := files[nkey]
	if !ok {
		t.Errorf("%s: BILANCIA_NKEY=%s is not among its mounted files", pod, nkey)
		return
	}
	name, replicas, err := broker.WorkerOf(src)
	if err != nil || name != pod || replicas != 1 {
		t.Errorf("%s: BILANCIA_NKEY=%s acts for %q (replicas %d, %v); want the pod's own credential, bilancia auth add-worker %s",
			pod, nkey, name, replicas, err, pod)
	}
	for _, b := range brokers {
		bc := b.pod.Containers[0]
		dir, _ := flagValue(bc.Args, "auth")
		want := filepath.Join(dir, broker.WorkersDir, pod+".nk")
		if got := mounted(t, b, bc)[want]; got != src {
			t.Errorf("%s: %s holds no %s from %s: the brokers would refuse worker %s (list its key in the projected volume)",
				b.name, want, filepath.Base(src), workersSecret, pod)
		}
	}
}
