package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/api/client"
)

// TestConsoleLoginThrottles: after a stranger's wrong passwords as an
// approver, an admin sees the paused source under the audit log, in
// Chinese, on the users screen, clears it with one click, and the approver logs in from there.
func TestConsoleLoginThrottles(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	consoleUsers(t, h, "guan admin", "li approver")
	stranger := fromAddr(h, "127.0.0.2")
	var ae *client.Error
	for i := range 6 {
		if _, err := stranger.Login(ctx, "li", fmt.Sprintf("guess %d", i)); !errors.As(err, &ae) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if ae.Status != http.StatusTooManyRequests {
		t.Fatalf("sixth guess: %v, want 429", ae)
	}

	br := startBrowser(t)
	ad := newTab(t, br)
	run(t, ad, 20*time.Second, "login page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ad, "guan")
	row := `#lt-rows tr[data-addr="127.0.0.2"][data-user="li"]`
	run(t, ad, 10*time.Second, "users view", chromedp.Click(chromedp.CSS(`#nav a[data-view="users"]`)), chromedp.WaitVisible(chromedp.CSS(row)))
	waitText(t, ad, "#lt-card h2", "登录限制", 5*time.Second)
	waitText(t, ad, row, "暂停登录", 5*time.Second)
	waitText(t, ad, `#lt-rows tr[data-addr="127.0.0.2"][data-user=""]`, "整个地址", 5*time.Second)
	if shots := os.Getenv("CUNXIANG_SCREENSHOTS"); shots != "" {
		screenshot(t, ad, shots, "login-throttles-1280.png")
	}
	run(t, ad, 10*time.Second, "clear li from 127.0.0.2", chromedp.Click(chromedp.CSS(row+" button")))
	waitJS(t, ad, `document.querySelector('`+row+`') === null`, 5*time.Second, "the row gone")
	waitText(t, ad, "#lt-note", "已解除 1 条", 5*time.Second)
	if _, err := stranger.Login(ctx, "li", "correct horse battery li"); err != nil {
		t.Fatalf("li from 127.0.0.2 after the admin cleared the limit: %v", err)
	}
}
