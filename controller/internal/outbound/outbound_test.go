package outbound

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

// TestFenceCheck: every address that is not public is refused, in each
// of its forms, unless the allow list names it; the controller's own
// listening addresses are refused even then.
func TestFenceCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     Options
		addr  string
		allow bool
	}{
		{"loopback", Options{}, "127.0.0.1:80", false},
		{"loopback elsewhere in 127/8", Options{}, "127.1.2.3:80", false},
		{"IPv6 loopback", Options{}, "[::1]:80", false},
		{"RFC 1918 10/8", Options{}, "10.1.2.3:6379", false},
		{"RFC 1918 172.16/12", Options{}, "172.20.0.1:80", false},
		{"RFC 1918 192.168/16", Options{}, "192.168.1.1:80", false},
		{"cloud metadata", Options{}, "169.254.169.254:80", false},
		{"IPv4-mapped loopback", Options{}, "[::ffff:127.0.0.1]:80", false},
		{"IPv4-mapped private", Options{}, "[::ffff:10.0.0.1]:80", false},
		{"NAT64 of loopback", Options{}, "[64:ff9b::7f00:1]:80", false},
		{"unspecified", Options{}, "0.0.0.0:80", false},
		{"IPv6 unspecified", Options{}, "[::]:80", false},
		{"multicast", Options{}, "224.0.0.1:80", false},
		{"IPv6 multicast", Options{}, "[ff02::1]:80", false},
		{"broadcast", Options{}, "255.255.255.255:80", false},
		{"carrier-grade NAT", Options{}, "100.64.0.1:80", false},
		{"unique local", Options{}, "[fd00::1]:80", false},
		{"IPv6 link-local", Options{}, "[fe80::1%lo]:80", false},
		{"public IPv4", Options{}, "8.8.8.8:443", true},
		{"public IPv6", Options{}, "[2606:4700::1111]:443", true},
		{"allowed range", Options{Allow: []string{"10.1.2.0/24"}}, "10.1.2.3:80", true},
		{"outside the allowed range", Options{Allow: []string{"10.1.2.0/24"}}, "10.1.3.3:80", false},
		{"allowed address, mapped form", Options{Allow: []string{"127.0.0.1"}}, "[::ffff:127.0.0.1]:80", true},
		{"own listening address, although allowed", Options{Allow: []string{"127.0.0.1"}, Own: []string{"127.0.0.1:8080"}}, "127.0.0.1:8080", false},
		{"own port on every address", Options{Allow: []string{"127.0.0.0/8"}, Own: []string{":1883"}}, "127.0.0.1:1883", false},
		{"another port of an allowed own address", Options{Allow: []string{"127.0.0.1"}, Own: []string{"127.0.0.1:8080"}}, "127.0.0.1:8081", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFence(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			err = f.Check(netip.MustParseAddrPort(tc.addr), false)
			if tc.allow && err != nil {
				t.Fatalf("%s refused: %v", tc.addr, err)
			}
			if !tc.allow && !errors.Is(err, ErrRefused) {
				t.Fatalf("%s let through (%v)", tc.addr, err)
			}
		})
	}
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow(" 10.1.2.0/24, warn.example.gov.cn ,192.168.1.5,[fd00::1],")
	if err != nil || len(got) != 4 {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"10.1.2.0/99", "http://x/", "a b", "::ffff:10.0.0.0/8"} {
		if _, err := ParseAllow(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// server is an HTTP server on addr (host:0) that counts its hits.
func server(t *testing.T, addr string, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &hits
}

// fakeDNS answers every A question with ip and every other with no
// records: a name server under the attacker's control.
func fakeDNS(t *testing.T, ip net.IP) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if len(q) < 12 {
				continue
			}
			// The question: labels up to a zero byte, then type and class.
			i := 12
			for i < len(q) && q[i] != 0 {
				i += int(q[i]) + 1
			}
			if i+5 > len(q) {
				continue
			}
			qtype := binary.BigEndian.Uint16(q[i+1:])
			out := append([]byte{}, q[:2]...)
			out = append(out, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0)
			out = append(out, q[12:i+5]...)
			if qtype == 1 {
				out[7] = 1 // one answer
				out = append(out, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4)
				out = append(out, ip.To4()...)
			}
			pc.WriteTo(out, from) //nolint:errcheck
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

func get(t *testing.T, c *http.Client, url string) (int, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	return resp.StatusCode, nil
}

// TestClientFence: the client refuses internal servers before sending
// anything, by address, by a name that resolves to one (the address
// connected to is the one checked: no DNS rebinding), and through a
// redirect from an allowed server.
func TestClientFence(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") } //nolint:errcheck
	internal, hits := server(t, "127.0.0.1:0", ok)
	_, port, _ := net.SplitHostPort(internal.Listener.Addr().String())
	dns := fakeDNS(t, net.IPv4(127, 0, 0, 1))

	t.Run("loopback refused, nothing sent", func(t *testing.T) {
		c, _ := NewClient(Options{})
		if _, err := get(t, c, internal.URL); !errors.Is(err, ErrRefused) {
			t.Fatalf("err %v, want ErrRefused", err)
		}
		closed, _ := NewClient(Options{})
		if _, err := get(t, closed, "http://127.0.0.1:1/"); !errors.Is(err, ErrRefused) {
			t.Fatalf("closed port: err %v, want the same ErrRefused", err)
		}
	})
	t.Run("name resolving to loopback refused", func(t *testing.T) {
		c, _ := NewClient(Options{Resolver: dns})
		if _, err := get(t, c, "http://rebind.test:"+port+"/"); !errors.Is(err, ErrRefused) {
			t.Fatalf("err %v, want ErrRefused", err)
		}
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("the internal server was reached %d times", n)
	}
	t.Run("allowed address fetched", func(t *testing.T) {
		c, _ := NewClient(Options{Allow: []string{"127.0.0.1"}})
		if code, err := get(t, c, internal.URL); err != nil || code != 200 {
			t.Fatalf("%d, %v", code, err)
		}
	})
	t.Run("allowed name fetched", func(t *testing.T) {
		c, _ := NewClient(Options{Allow: []string{"rebind.test"}, Resolver: dns})
		if code, err := get(t, c, "http://rebind.test:"+port+"/"); err != nil || code != 200 {
			t.Fatalf("%d, %v", code, err)
		}
	})

	before := hits.Load()
	redirect := func(to string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
	}
	for _, tc := range []struct{ name, to string }{
		{"redirect to loopback", internal.URL + "/secret"},
		{"redirect to a name resolving to loopback", "http://rebind.test:" + port + "/secret"},
		{"redirect to the mapped form", "http://[::ffff:127.0.0.1]:" + port + "/secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 127.0.0.2 stands for the county's allowed warning server.
			allowed, _ := server(t, "127.0.0.2:0", redirect(tc.to))
			c, _ := NewClient(Options{Allow: []string{"127.0.0.2"}, Resolver: dns})
			if _, err := get(t, c, allowed.URL); !errors.Is(err, ErrRefused) {
				t.Fatalf("err %v, want ErrRefused", err)
			}
		})
	}
	if n := hits.Load() - before; n != 0 {
		t.Fatalf("redirects reached the internal server %d times", n)
	}

	t.Run("redirect to another scheme", func(t *testing.T) {
		allowed, _ := server(t, "127.0.0.2:0", redirect("file:///etc/passwd"))
		c, _ := NewClient(Options{Allow: []string{"127.0.0.2"}})
		if _, err := get(t, c, allowed.URL); err == nil || !strings.Contains(err.Error(), "file") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("redirect loop", func(t *testing.T) {
		var loop *httptest.Server
		loop, _ = server(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, loop.URL+"/again", http.StatusFound)
		})
		c, _ := NewClient(Options{Allow: []string{"127.0.0.2"}})
		if _, err := get(t, c, loop.URL); err == nil || !strings.Contains(err.Error(), "redirects") {
			t.Fatalf("err %v", err)
		}
	})
}
