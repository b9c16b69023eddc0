package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/supervise"
)

// The dashboard in a real headless Chromium. CI must run it: without a
// browser it fails, unless BILANCIA_SKIP_BROWSER=1 allows the skip.
// BILANCIA_CHROMIUM names the browser when it is not chromium on PATH;
// BILANCIA_UPDATE_SCREENSHOT=1 also writes docs/dashboard.png after 40
// seconds of load; BILANCIA_ARTIFACTS is where a failure's screenshot goes
// (default: a new directory under $TMPDIR, named in the log).

// chromium finds the browser, or skips the test when allowed to.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BILANCIA_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("BILANCIA_SKIP_BROWSER") == "1" {
		t.Skip("no chromium on PATH, and BILANCIA_SKIP_BROWSER=1: skipped (a browser test of the dashboard)")
	}
	t.Fatal("no chromium on PATH: install it (scripts/test does: apt-get install chromium), name it with BILANCIA_CHROMIUM, or set BILANCIA_SKIP_BROWSER=1 to skip this test")
	return ""
}

// browser starts a headless Chromium for the test and returns a tab; if
// the test fails, a screenshot of the tab is saved.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root, as in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 660),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Registered after the cancels, so run before them.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := os.Getenv("BILANCIA_ARTIFACTS")
		if dir == "" {
			dir, _ = os.MkdirTemp("", "bilancia-dashboard-")
		}
		shot := filepath.Join(dir, t.Name()+"-failure.png")
		if err := screenshot(ctx, shot); err != nil {
			t.Logf("no screenshot of the failure: %v", err)
			return
		}
		t.Logf("screenshot of the failure: %s", shot)
	})
	// The first action starts the browser on ctx itself (a context
	// derived from it would take the browser down when it ends), so its
	// deadline is a timer; the start can take seconds on a loaded machine.
	timer := time.AfterFunc(60*time.Second, cancel)
	defer timer.Stop()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// rowView is a worker's row as the page shows it.
type rowView struct {
	State   string `json:"state"`
	Drained bool   `json:"drained"`
	Served  int    `json:"served"`
}

const readRows = `(() => {
  const o = {};
  for (const tr of document.querySelectorAll("#worker-rows .row")) {
    o[tr.dataset.id] = {state: tr.dataset.state, drained: tr.dataset.drained === "yes",
      served: Number(tr.querySelector(".served").textContent.replace(/,/g, ""))};
  }
  return o;
})()`

// waitPage polls the page's rows until ok returns nil or the deadline.
func waitPage(t *testing.T, tab context.Context, what string, ok func(map[string]rowView) error) {
	t.Helper()
	var last error
	err := supervise.Poll(context.Background(), what, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]rowView](readRows))
		if err != nil {
			return err
		}
		last = ok(rows)
		return last
	})
	if err != nil {
		t.Fatalf("the page never showed %s: %v", what, err)
	}
}

// screenshot saves the page as a PNG at path.
func screenshot(tab context.Context, path string) error {
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// dashboardURL reads the dashboard's address from the dispatcher's log.
func dashboardURL(t *testing.T, d *proc) string {
	t.Helper()
	var url string
	err := supervise.Poll(context.Background(), "the dashboard's URL in "+d.log, 20*time.Second, 10*time.Millisecond, func() error {
		for _, l := range readLog(d.log) {
			var v struct{ URL string }
			if l.Msg == "dashboard" && json.Unmarshal([]byte(l.raw), &v) == nil && v.URL != "" {
				url = v.URL
				return nil
			}
		}
		return errors.New("not logged yet")
	}, d.sp)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// TestDashboardInBrowser: the page shows the workers, their served
// counts rising with requests, a killed worker's row turning down, and a
// worker drained with its button.
func TestDashboardInBrowser(t *testing.T) {
	path := chromium(t)
	e := newEnv(t)
	b := e.broker("broker")
	d := e.dispatcher(b.URL, "d-dash", "--http", "127.0.0.1:0", "--dead-after", "4s")
	ids := []string{"w-a", "w-b", "w-c", "w-d"}
	workers := map[string]*proc{}
	for _, id := range ids {
		workers[id] = e.worker(b.URL, id)
	}
	url := dashboardURL(t, d)
	tab := browser(t, path)

	nav, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nav, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`#worker-rows .row`))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	waitPage(t, tab, "every worker up", func(rows map[string]rowView) error {
		for _, id := range ids {
			if rows[id].State != "up" {
				return fmt.Errorf("%s: %+v", id, rows)
			}
		}
		return nil
	})

	nc, err := nats.Connect(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const n = 200
	for i := range n {
		if _, err := nc.Request("calc.request", fmt.Appendf(nil, "add %d 1", i), 5*time.Second); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	waitPage(t, tab, fmt.Sprintf("%d requests served", n), func(rows map[string]rowView) error {
		sum := 0
		for _, r := range rows {
			sum += r.Served
		}
		if sum < n {
			return fmt.Errorf("served %d in %+v", sum, rows)
		}
		return nil
	})

	workers["w-c"].kill(t)
	waitPage(t, tab, "w-c down after its kill", func(rows map[string]rowView) error {
		if rows["w-c"].State != "down" {
			return fmt.Errorf("w-c %+v", rows["w-c"])
		}
		return nil
	})

	click, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(click, chromedp.Click(chromedp.CSS(`#worker-rows .row[data-id="w-a"] button.drain`))); err != nil {
		t.Fatalf("click drain on w-a: %v", err)
	}
	waitPage(t, tab, "w-a drained, the others not", func(rows map[string]rowView) error {
		if !rows["w-a"].Drained || rows["w-b"].Drained || rows["w-a"].State != "up" {
			return fmt.Errorf("%+v", rows)
		}
		return nil
	})
	// The drain is the dispatcher's, not only the page's.
	st, err := e.status(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range st[0].Workers {
		if w.Drained != (w.ID == "w-a") {
			t.Errorf("status after the click: %s drained %v", w.ID, w.Drained)
		}
	}

	if os.Getenv("BILANCIA_UPDATE_SCREENSHOT") == "1" {
		updateScreenshot(t, nc, tab)
	}
}

// updateScreenshot runs 40 seconds of mixed load at a rate that rises
// and falls, so that the charts have something to show, then writes
// docs/dashboard.png.
func updateScreenshot(t *testing.T, nc *nats.Conn, tab context.Context) {
	t.Helper()
	start := time.Now()
	end := start.Add(40 * time.Second)
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				req := fmt.Sprintf("fib %d", i%90)
				if i%10 == c {
					req = fmt.Sprintf("sleep %d", 1+i%20)
				}
				_, _ = nc.Request("calc.request", []byte(req), 5*time.Second)
				// Pacing: the pause grows and shrinks over 20 s.
				phase := time.Since(start) % (20 * time.Second)
				time.Sleep(time.Duration(phase.Seconds()*phase.Seconds()) * 20 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	out := filepath.Join("..", "docs", "dashboard.png")
	if err := screenshot(tab, out); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}
