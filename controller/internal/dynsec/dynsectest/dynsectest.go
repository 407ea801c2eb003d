// Package dynsectest starts a private Mosquitto broker with the Dynamic
// Security plugin for tests: its own process, config and port, so it
// never touches the machine's Mosquitto on 1883.
package dynsectest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Broker is a running Mosquitto with dynsec and an admin account.
type Broker struct {
	URL, AdminUser, AdminPassword string
}

// plugin finds the Dynamic Security plugin of Debian's mosquitto package.
func plugin() string {
	for _, p := range []string{
		"/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
		"/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
		"/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
		"/usr/lib/mosquitto_dynamic_security.so",
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Start runs mosquitto with a fresh dynsec config and stops it at cleanup.
// It skips the test (saying why) when mosquitto, mosquitto_ctrl or the
// plugin is missing; test.sh installs Debian's mosquitto, which has all
// three.
func Start(tb testing.TB) Broker {
	tb.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		tb.Skipf("no mosquitto binary (test.sh installs Debian's mosquitto): %v", err)
	}
	ctrl, err := exec.LookPath("mosquitto_ctrl")
	if err != nil {
		tb.Skipf("no mosquitto_ctrl (Debian's mosquitto has it): %v", err)
	}
	so := plugin()
	if so == "" {
		tb.Skip("no mosquitto_dynamic_security.so (Debian's mosquitto has it)")
	}
	dir := tb.TempDir()
	b := Broker{AdminUser: "dynsec-admin", AdminPassword: fmt.Sprintf("pw-%d", time.Now().UnixNano())}
	cfg := filepath.Join(dir, "dynsec.json")
	if out, err := exec.Command(ctrl, "dynsec", "init", cfg, b.AdminUser, b.AdminPassword).CombinedOutput(); err != nil {
		tb.Fatalf("mosquitto_ctrl dynsec init: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "mosquitto.conf")
	log := filepath.Join(dir, "mosquitto.log")
	text := fmt.Sprintf("per_listener_settings false\nlistener %d 127.0.0.1\nallow_anonymous false\n"+
		"plugin %s\nplugin_opt_config_file %s\npersistence false\nlog_dest file %s\nlog_type all\n"+
		"max_keepalive 120\n", port, so, cfg, log)
	if os.Geteuid() == 0 {
		// As root, mosquitto would drop to the mosquitto user, which
		// cannot read the test's private temp dir.
		text += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start mosquitto: %v", err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if tb.Failed() {
			if out, err := os.ReadFile(log); err == nil && len(out) > 0 {
				if len(out) > 8000 {
					out = out[len(out)-8000:]
				}
				tb.Logf("mosquitto log (tail):\n%s", out)
			}
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mosquitto did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.URL = "tcp://" + addr
	return b
}
