package main

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/api"
)

// TestConsolePassword: a user changes their own password in the console.
// A wrong current password and two different new ones are refused in
// Chinese; the change sends them to the login page, where the old password
// no longer works and the new one does.
func TestConsolePassword(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	if _, err := h.Client.CreateUser(context.Background(), api.UserRequest{Username: "sun", DisplayName: "sun", Role: "viewer", Village: "", Password: "correct horse battery sun"}); err != nil {
		t.Fatal(err)
	}
	browser := startBrowser(t)
	// The wrong current password's answer is an expected 400.
	tab := newTab(t, browser, expectedResponse{"/api/v1/me/password", 400})
	run(t, tab, 20*time.Second, "login page", chromedp.EmulateViewport(360, 740),
		chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, tab, "sun")
	run(t, tab, 10*time.Second, "account page",
		chromedp.Click(chromedp.CSS("#account-link")), chromedp.WaitVisible(chromedp.CSS("#password-form")))
	submit := func(current, next, repeat string) {
		t.Helper()
		run(t, tab, 10*time.Second, "submit",
			chromedp.SetValue(chromedp.CSS("#pw-current"), current),
			chromedp.SetValue(chromedp.CSS("#pw-new"), next),
			chromedp.SetValue(chromedp.CSS("#pw-repeat"), repeat),
			chromedp.Click(chromedp.CSS(`#password-form button[type=submit]`)))
	}
	submit("correct horse battery sun", "a new passphrase", "another passphrase")
	waitText(t, tab, "#pw-error", "两次输入的新密码不一致", 5*time.Second)
	submit("wrong horse", "a new passphrase", "a new passphrase")
	waitText(t, tab, "#pw-error", "当前密码不对", 5*time.Second)
	submit("correct horse battery sun", "a new passphrase", "a new passphrase")
	run(t, tab, 10*time.Second, "back to the login page", chromedp.WaitVisible(chromedp.CSS("#login-error")))
	waitText(t, tab, "#login-error", "密码已修改", 10*time.Second)
	evalJS[bool](t, tab, `document.getElementById('login-error').hidden = true`)
	run(t, tab, 20*time.Second, "old password",
		chromedp.SendKeys(chromedp.CSS("#username"), "sun"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery sun"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")))
	waitText(t, tab, "#login-error", "用户名或密码错误", 10*time.Second)
	run(t, tab, 20*time.Second, "new password",
		chromedp.SendKeys(chromedp.CSS("#username"), "sun"),
		chromedp.SendKeys(chromedp.CSS("#password"), "a new passphrase"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#nav")))
}
