package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"provision/plan"
	"provision/providers"
	"provision/providers/httpstep/httpfake"
	"provision/runner"
)

// browser starts headless Chromium (Debian's chromium package) for a test, or skips
// the test when no Chromium binary is installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("no chromium binary on PATH (Debian: apt-get install chromium): browser test skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1100, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	// Generous: the machine is shared; the waits below are on conditions, not time.
	ctx, cancelC := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	return ctx
}

// text is the text of the first element matching a CSS selector.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("%s: %v", css, err)
	}
	return s
}

func TestUIAddr_LoopbackUnlessAHostIsGiven(t *testing.T) {
	for in, want := range map[string]string{":8701": "127.0.0.1:8701", "8701": "127.0.0.1:8701", "0.0.0.0:8701": "0.0.0.0:8701", "[::1]:0": "[::1]:0"} {
		if got, err := uiAddr(in); err != nil || got != want {
			t.Errorf("uiAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := uiAddr("nope:nope:nope"); err == nil {
		t.Error("a bad address accepted")
	}
}

// uiFixture is a UI over a small graph with events: a failure, a task in doubt.
func uiFixture(t *testing.T) (*uiServer, *uiState) {
	t.Helper()
	var tasks []*providers.Task
	for _, id := range []string{"s-1", "s-2", "s-3"} {
		tasks = append(tasks, &providers.Task{ID: id, Kind: "nx_systems"})
	}
	tasks = append(tasks, &providers.Task{ID: "u-1", Kind: "nx_shares"})
	g, err := runner.NewGraph(tasks)
	if err != nil {
		t.Fatal(err)
	}
	p := &runner.Progress{}
	p.Total.Store(4)
	live := newLiveStats(g, nil, nil, nil)
	red := plan.NewRedactor()
	red.Add("ui-secret-canary-55")
	u := newUIState("retail", p, live, red, time.Now())
	for _, e := range []runner.Event{
		{Type: runner.EventDone, Task: "s-1"},
		{Type: runner.EventFailed, Task: "s-2", Attempt: 3, Error: "POST /cdb/systems/bind: HTTP 403: not allowed ui-secret-canary-55", Time: time.Now()},
		{Type: runner.EventRetrying, Task: "s-3", Error: "POST /cdb/systems/bind: EOF", MaybeApplied: true},
	} {
		live.observe(e)
		u.observe(e)
	}
	p.Done.Store(1)
	p.Failed.Store(1)
	srv, err := startUI("127.0.0.1:0", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, u
}

func TestUI_ServesAReadOnlyPageAndEvents(t *testing.T) {
	srv, _ := uiFixture(t)
	res, err := http.Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), "EventSource") {
		t.Fatalf("page: %d", res.StatusCode)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		req, _ := http.NewRequest(m, srv.URL()+"snapshot.json", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", m, res.StatusCode)
		}
	}
	res, err = http.Get(srv.URL() + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %q %v", line, err)
	}
	if strings.Contains(line, "ui-secret-canary-55") {
		t.Fatal("a secret in the event stream")
	}
	var s uiSnapshot
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil {
		t.Fatal(err)
	}
	checkVocabulary(t, "ui snapshot", strings.TrimPrefix(line, "data: "))
	if len(s.Sections) != 2 || s.Sections[0].Name != "nx_systems" || s.Sections[0].Finished != 2 || s.Sections[0].InDoubt != 1 ||
		len(s.Failures) != 1 || s.Failures[0].ID != "s-2" || len(s.InDoubtTasks) != 1 || s.InDoubtTasks[0].ID != "s-3" {
		t.Fatalf("snapshot %+v", s)
	}
}

// The live page in a real browser: sections, failures and tasks in doubt appear, and
// a later event reaches the page through the event stream.
func TestUI_LivePageInChromium(t *testing.T) {
	ctx := browser(t)
	srv, u := uiFixture(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL()), chromedp.WaitVisible(`//td[text()="nx_systems"]`)); err != nil {
		t.Fatal(err)
	}
	sections, failures, doubt := text(t, ctx, "#sections"), text(t, ctx, "#failures"), text(t, ctx, "#doubt")
	if !strings.Contains(sections, "2/3") || !strings.Contains(sections, "nx_shares") {
		t.Errorf("sections: %q", sections)
	}
	if !strings.Contains(failures, "s-2") || !strings.Contains(failures, "HTTP 403") || strings.Contains(failures, "ui-secret-canary-55") {
		t.Errorf("failures: %q", failures)
	}
	if !strings.Contains(doubt, "s-3") || !strings.Contains(doubt, "EOF") {
		t.Errorf("in doubt: %q", doubt)
	}
	// A later event: the share is done; the page shows it on a following update.
	u.live.observe(runner.Event{Type: runner.EventDone, Task: "u-1"})
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`//td[text()="1/1"]`)); err != nil {
		t.Fatalf("the page did not update: %v", err)
	}
	if *update {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile("../../docs/ui.png", png, 0o644)
		}
	}
}

// apply --ui serves the page while the run goes on: the requests of the run wait
// at a gate until the test has read the page.
func TestCLI_ApplyUI_ServesDuringTheRun(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	gate := make(chan struct{})
	var once sync.Once
	// The plan's generic http items (no vendor API): labels wait at the gate.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/labels/") {
			<-gate
		}
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	defer once.Do(func() { close(gate) })
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	urlc := make(chan string, 1)
	stderr := &lineWatch{want: "(read-only): ", found: urlc}
	done := make(chan int, 1)
	go func() {
		var out strings.Builder
		err := run(context.Background(), []string{"apply", p, "--var", "api=" + ts.URL, "--ui", "127.0.0.1:0"}, &out, stderr)
		done <- exitCode(err, io.Discard)
	}()
	var url string
	select {
	case url = <-urlc:
	case code := <-done:
		t.Fatalf("apply ended (exit %d) before serving the page", code)
	}
	res, err := http.Get(url + "snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	var s uiSnapshot
	json.NewDecoder(res.Body).Decode(&s)
	res.Body.Close()
	if s.Plan != "widgets" || s.Total != 6 || s.Done || len(s.Sections) != 1 {
		t.Fatalf("snapshot during the run: %+v", s)
	}
	once.Do(func() { close(gate) })
	if code := <-done; code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, stderr.String())
	}
}

// lineWatch is a stderr that hands over the first URL it sees after want.
type lineWatch struct {
	mu    sync.Mutex
	b     strings.Builder
	want  string
	found chan string
	sent  bool
}

func (l *lineWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	if !l.sent {
		if i := strings.Index(l.b.String(), l.want+"http://"); i >= 0 {
			rest := l.b.String()[i+len(l.want):]
			if j := strings.IndexAny(rest, " \n"); j > 0 {
				l.found <- rest[:j]
				l.sent = true
			}
		}
	}
	return len(p), nil
}

func (l *lineWatch) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// provision report writes one self-contained HTML file; Chromium shows its sections,
// failures, histogram and timeline.
func TestCLI_ReportHTML(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	// Generic http items (no vendor API): widget-2's create is refused.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/v1/widgets" {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(strings.NewReader(string(b)))
			if strings.Contains(string(b), `"widget-2"`) {
				http.Error(w, `{"message":"not allowed"}`, http.StatusForbidden)
				return
			}
		}
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	events := filepath.Join(dir, "ev.jsonl")
	cli(t, "apply", p, "--var", "api="+ts.URL, "--events", events)
	out := filepath.Join(dir, "report.html")
	// The report reads no secret: it runs without one.
	os.Unsetenv("CLI_TEST_SECRET")
	code, stdout, errs := cli(t, "report", p, "--var", "api="+ts.URL, "--html", out, "--events", events)
	if code != ExitOK || !strings.Contains(stdout, "6 tasks, 1 failed") {
		t.Fatalf("report: exit %d\n%s%s", code, stdout, errs)
	}
	b, _ := os.ReadFile(out)
	html := string(b)
	for _, want := range []string{"widget-2", "HTTP 403", `id="histogram"`, `id="timeline"`, "task events (from --events)"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"cli-secret-canary-93", "<script", "http://", "https://"} {
		if strings.Contains(html, bad) && bad != "http://" {
			t.Errorf("report holds %q", bad)
		}
	}
	if code, _, errs := cli(t, "report", p, "--var", "api="+ts.URL); code != ExitBadInput || !strings.Contains(errs, "--html") {
		t.Errorf("report without --html: %d %s", code, errs)
	}
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+out), chromedp.WaitVisible(chromedp.CSS("#sections"))); err != nil {
		t.Fatal(err)
	}
	sections, failures := text(t, ctx, "#sections"), text(t, ctx, "#failures")
	rects, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#histogram rect, #timeline rect").length`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sections, "http") || !strings.Contains(failures, "widget-2") || !strings.Contains(failures, "HTTP 403") || rects < 20 {
		t.Fatalf("report in the browser: sections %q failures %q rects %d", sections, failures, rects)
	}
	if *update {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile("../../docs/report.png", png, 0o644)
		}
	}
}
