// Package outbound makes the requests the controller sends where outside
// input tells it to (the recording a CAP alert links), fenced off from the
// controller's own network: a malicious or mistaken alert must not make the
// controller probe or fetch from loopback, the LAN, the cloud metadata
// address or the controller itself.
//
// The fence checks the address each connection is actually made to (a
// net.Dialer Control function, after name resolution), so neither a name
// that resolves to a private address, nor DNS rebinding, nor a redirect
// gets past it. An operator lets a host or range through with Allow.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is the error of every request the fence stops. Its text is
// the same whatever was refused, so that it tells nothing about the
// refused host (whether a port is open, what it would have answered).
var ErrRefused = errors.New("refused: private address")

// Defaults of Options.
const (
	DefaultTimeout      = 20 * time.Second
	DefaultDialTimeout  = 5 * time.Second
	DefaultMaxRedirects = 3
)

// Options configure a Client. The zero value refuses every non-public
// address and allows nothing more.
type Options struct {
	// Allow lists what the fence lets through although it is not public:
	// host names (the name in the URL, matched exactly, case-insensitive),
	// IP addresses and CIDR ranges (see ParseAllow).
	Allow []string
	// Own are the controller's listening addresses (host:port; an empty
	// or unspecified host means every address of this machine). They are
	// refused even when Allow lets their address through.
	Own []string
	// Timeout bounds a whole request, redirects and body included
	// (DefaultTimeout if 0).
	Timeout time.Duration
	// MaxRedirects is how many redirects a request follows
	// (DefaultMaxRedirects if 0).
	MaxRedirects int
	// Resolver resolves host names (net.DefaultResolver if nil); tests
	// give one of their own.
	Resolver *net.Resolver
}

// Fence decides which addresses may be connected to.
type Fence struct {
	hosts    map[string]bool
	prefixes []netip.Prefix
	own      []netip.AddrPort
}

// ParseAllow checks an allow list such as
// "10.1.2.0/24,warn.example.gov.cn,192.168.1.5" and returns its entries.
func ParseAllow(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, _, err := parseEntry(f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// parseEntry reads one allow entry as a range or a host name.
func parseEntry(f string) (netip.Prefix, string, error) {
	if p, err := netip.ParsePrefix(f); err == nil {
		if p.Addr().Is4In6() && p.Bits() < 96 {
			return netip.Prefix{}, "", fmt.Errorf("%q: an IPv4-mapped range needs at least 96 bits", f)
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked(), "", nil
	}
	if a, err := netip.ParseAddr(strings.Trim(f, "[]")); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	if strings.ContainsAny(f, "/:[] ") || strings.Trim(f, ".") == "" {
		return netip.Prefix{}, "", fmt.Errorf("%q is neither a host name, an IP address nor a CIDR range", f)
	}
	return netip.Prefix{}, strings.ToLower(strings.TrimSuffix(f, ".")), nil
}

// unmapBits is how many prefix bits an IPv4-mapped IPv6 address spends on
// the ::ffff: part.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// NewFence builds the fence of o.
func NewFence(o Options) (*Fence, error) {
	f := &Fence{hosts: map[string]bool{}}
	for _, e := range o.Allow {
		p, host, err := parseEntry(strings.TrimSpace(e))
		if err != nil {
			return nil, fmt.Errorf("outbound: allow: %w", err)
		}
		if host != "" {
			f.hosts[host] = true
		} else {
			f.prefixes = append(f.prefixes, p)
		}
	}
	for _, s := range o.Own {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("outbound: own address %q: %w", s, err)
		}
		pn, err := net.LookupPort("tcp", port)
		if err != nil {
			return nil, fmt.Errorf("outbound: own address %q: %w", s, err)
		}
		a := netip.IPv6Unspecified()
		if host != "" && host != "localhost" {
			if a, err = netip.ParseAddr(host); err != nil {
				return nil, fmt.Errorf("outbound: own address %q: host is not an IP address", s)
			}
		}
		if host == "localhost" {
			a = netip.MustParseAddr("127.0.0.1")
		}
		f.own = append(f.own, netip.AddrPortFrom(a.Unmap(), uint16(pn)))
	}
	return f, nil
}

// HostAllowed reports whether a URL's host name is on the allow list
// (every address it resolves to may then be connected to).
func (f *Fence) HostAllowed(host string) bool {
	return f.hosts[strings.ToLower(strings.TrimSuffix(host, "."))]
}

// Check says whether a connection to ap may be made; hostAllowed is
// whether the name it was resolved from is allowed. It returns nil or
// ErrRefused.
func (f *Fence) Check(ap netip.AddrPort, hostAllowed bool) error {
	a := ap.Addr().Unmap().WithZone("")
	if !a.IsValid() {
		return ErrRefused
	}
	for _, o := range f.own {
		if o.Port() == ap.Port() && (o.Addr() == a || o.Addr().IsUnspecified() && isLocal(a)) {
			return ErrRefused
		}
	}
	if hostAllowed {
		return nil
	}
	for _, p := range f.prefixes {
		if p.Contains(a) {
			return nil
		}
	}
	if Internal(a) || isLocal(a) {
		return ErrRefused
	}
	return nil
}

// blocked are the ranges, besides those netip classifies, that are not
// the public internet or that embed an IPv4 address which may not be.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and 255.255.255.255 broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64 of any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4, embeds an IPv4 address
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo, embeds an IPv4 address
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
	netip.MustParsePrefix("2001:10::/28"),    // ORCHID
	netip.MustParsePrefix("2001:20::/28"),    // ORCHIDv2
}

// Internal reports whether a is not a public unicast address: loopback,
// private (RFC 1918, fc00::/7), link-local, unspecified, multicast,
// broadcast, carrier-grade NAT, reserved, or an IPv6 form of an IPv4
// address (IPv4-mapped forms are judged by their IPv4 address).
func Internal(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isLocal reports whether a is an address of this machine.
func isLocal(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: treat it as ours
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// NewClient returns an HTTP client whose every connection, redirects
// included, passes the fence: http and https only, no proxy from the
// environment (a proxy would connect for it, unchecked), at most
// MaxRedirects redirects, Timeout for the whole request.
func NewClient(o Options) (*http.Client, error) {
	f, err := NewFence(o)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = DefaultMaxRedirects
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		allowed := f.HostAllowed(host)
		d := &net.Dialer{
			Timeout:  DefaultDialTimeout,
			Resolver: o.Resolver,
			// Control runs for each address tried, after resolution: the
			// address connected to is the one checked.
			Control: func(network, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil {
					return ErrRefused
				}
				return f.Check(ap, allowed)
			},
		}
		return d.DialContext(ctx, network, addr)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.Timeout,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > o.MaxRedirects {
				return fmt.Errorf("more than %d redirects", o.MaxRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirected to a %s address", req.URL.Scheme)
			}
			return nil
		},
	}, nil
}
