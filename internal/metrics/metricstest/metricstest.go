// Package metricstest scrapes and checks Prometheus metrics for tests: a
// test package imports it, the binary never does.
package metricstest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are scraped metric families by name.
type Families map[string]*dto.MetricFamily

// Scrape gets url over HTTP and parses the text exposition format.
func Scrape(url string) (Families, error) {
	// No connection kept alive: none outlives the test (goleak).
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return mfs, nil
}

// Gather gathers g in process, as a scrape would see it.
func Gather(g prometheus.Gatherer) (Families, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	f := make(Families, len(mfs))
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	return f, nil
}

// Want says, as an error, how the sample of name with labels differs
// from want: missing, several, or another value; nil when it is want.
func (f Families) Want(want float64, name string, labels ...string) error {
	if got, ok := f.Value(name, labels...); !ok || got != want {
		return fmt.Errorf("%s%v = %v (found: %v); want %v", name, labels, got, ok, want)
	}
	return nil
}

// Value is the value of the sample of metric name whose labels include
// labels (name, value pairs): a counter's, gauge's or untyped value, a
// histogram's count. ok is false when there is no such sample, and when
// there are several.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
	n := 0
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		n++
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Histogram != nil:
			v = float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			v = m.Untyped.GetValue()
		}
	}
	return v, n == 1
}

// Sum adds the values of every sample of metric name whose labels include
// labels.
func (f Families) Sum(name string, labels ...string) float64 {
	var sum float64
	for _, m := range f[name].GetMetric() {
		if hasLabels(m, labels) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Lint gathers g and returns promlint's problems with it (names, units,
// suffixes), and metrics without help, one line each.
func Lint(g prometheus.Gatherer) ([]string, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	return lint(mfs)
}

// Lint returns the problems of the families scraped, as the function Lint.
func (f Families) Lint() ([]string, error) {
	mfs := make([]*dto.MetricFamily, 0, len(f))
	for _, mf := range f {
		mfs = append(mfs, mf)
	}
	return lint(mfs)
}

func lint(mfs []*dto.MetricFamily) ([]string, error) {
	l := promlint.NewWithMetricFamilies(mfs)
	// promlint wants help present; a registry gives every metric one, "" when it was not written.
	l.AddCustomValidations(func(mf *dto.MetricFamily) []error {
		if mf.GetHelp() == "" {
			return []error{errors.New("no help text")}
		}
		return nil
	})
	problems, err := l.Lint()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(problems))
	for _, p := range problems {
		out = append(out, p.Metric+": "+p.Text)
	}
	sort.Strings(out)
	return out, nil
}

// CheckLint fails t for every promlint problem of g's metrics, and when
// g gathers no metric at all (a lint of nothing proves nothing).
func CheckLint(t testing.TB, g prometheus.Gatherer) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if len(mfs) == 0 {
		t.Fatal("gathered no metric to lint")
	}
	problems, err := Lint(g)
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	if len(problems) > 0 {
		t.Errorf("promlint:\n%s", strings.Join(problems, "\n"))
	}
}
