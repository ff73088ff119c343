package tests

// The status page as a person sees it: rendered by headless Chromium
// (Debian's chromium, which test.sh installs) on a phone-sized screen,
// driven from Go with chromedp.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds the browser, or skips (fails under CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	fwdSkipOrFail(t, "chromium is not installed; ./test.sh installs it (apt-get install chromium)")
	return ""
}

// TestStatusPageInChromium: what a voice engineer looks for on the page
// at the admin root, read from the rendered page's text: each
// sub-cluster and its backend with its state, the trust verdict, the
// config's sha256; that the page fits a phone's width; and that it
// refreshes by itself, showing a backend that went down without anyone
// reloading it.
func TestStatusPageInChromium(t *testing.T) {
	browser := chromiumPath(t)
	gw, east, west, macE, _ := depTwoClusters(t, "")
	fwdMustGet(t, gw.TFTP[0], "SEP"+macE+".cnf.xml", fwdContent("east", "SEP"+macE+".cnf.xml"))
	sha := depStatus(t, gw).Config.SHA256

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // the tests run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-gpu", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 120*time.Second)
	defer cancelT()

	sectionText := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("section %s: %v", id, err)
		}
		return s
	}
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), // a phone in portrait
		chromedp.Navigate("http://"+gw.Admin+"/"),
		chromedp.WaitVisible(chromedp.ID("subcluster-west")),
	)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	ready := sectionText("ready")
	if !strings.HasPrefix(title, "ctftp ") || strings.Contains(title, "not ready") || ready != "ready" {
		t.Errorf("title %q, badge %q; want a ready gateway", title, ready)
	}
	pageWidth, err1 := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
	scrollWidth, err2 := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err1 != nil || err2 != nil || pageWidth == 0 {
		t.Fatalf("widths: %v %v", err1, err2)
	}
	if scrollWidth > pageWidth {
		t.Errorf("the page is %dpx wide on a %dpx screen: it must not scroll sideways", scrollWidth, pageWidth)
	}
	// Nor may a table be cut off at the right edge: every cell, the
	// last error included, is within the screen.
	cut, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("td, dd, li")]
		.filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.textContent)`))
	if err != nil || len(cut) > 0 {
		t.Errorf("cut off at the right edge of a %dpx screen: %q %v", pageWidth, cut, err)
	}
	for id, want := range map[string][]string{
		"subcluster-east": {"Sub-cluster east", east.Addr, "up", "1 of 1 backends up", " ago (", "took"},
		"subcluster-west": {"Sub-cluster west", west.Addr, "up"},
		"trust":           {"verdict", "(central)", "east", "west"},
		"config":          {"generation", "1", "sha256", sha},
		"cache":           {"hit ratio"},
		"routing":         {"learned routes"},
	} {
		text := sectionText(id)
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("section %s lacks %q:\n%s", id, w, text)
			}
		}
	}
	// The verdict the page shows is the one /status reports.
	var st struct {
		Trust struct{ Verdict string } `json:"trust"`
	}
	if err := json.Unmarshal([]byte(gw.adminGet("/status")), &st); err != nil {
		t.Fatal(err)
	}
	verdict, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#trust dl dd`)))
	if err != nil || verdict == "" || verdict != st.Trust.Verdict {
		t.Errorf("trust verdict on the page %q (%v), in /status %q", verdict, err, st.Trust.Verdict)
	}

	// West goes down; the page, left alone, shows it within a few
	// refreshes.
	west.Kill()
	// Polled from here rather than with chromedp.Poll, which ends with
	// the document it started in: each refresh is a new document.
	const westDown = `document.querySelector("#ready") !== null &&
		document.querySelector("#ready").textContent == "not ready" &&
		document.querySelector("#subcluster-west tbody td.bad") !== null &&
		document.querySelector("#subcluster-west tbody td.bad").textContent.startsWith("down")`
	for deadline := time.Now().Add(60 * time.Second); ; {
		if down, err := chromedp.Run(ctx, chromedp.Evaluate[bool](westDown)); err == nil && down {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not show west down by itself within 60s:\n%s", sectionText("subcluster-west"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if notReady := sectionText("not-ready"); !strings.Contains(notReady, `subcluster "west": no backend up`) {
		t.Errorf("not-ready reasons %q", notReady)
	}
	if os.Getenv("CTFTP_SCREENSHOT") != "" {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile(os.Getenv("CTFTP_SCREENSHOT"), png, 0o644)
		}
	}
}
