package main

import "testing"

// TestFlagsFromEnvironment: the packaged service configures the controller
// with CUNXIANG_* variables (/etc/cunxiang/controller.env); a flag on the
// command line wins over its variable.
func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("CUNXIANG_HTTP", "127.0.0.1:18080")
	t.Setenv("CUNXIANG_PUBLIC_URL", "http://cx.example.gov.cn:8080")
	t.Setenv("CUNXIANG_COUNTY_NAME", "示例 县")
	t.Setenv("CUNXIANG_MQTT_MAX_CONNS", "500")
	t.Setenv("CUNXIANG_DATA", "/from/env")
	m := NewMain()
	if err := m.ParseFlags([]string{"--data", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	if m.HTTPAddr != "127.0.0.1:18080" || m.PublicURL != "http://cx.example.gov.cn:8080" || m.CountyName != "示例 县" || m.MQTTMaxConns != 500 {
		t.Errorf("from the environment: http %q, public url %q, county %q, max conns %d", m.HTTPAddr, m.PublicURL, m.CountyName, m.MQTTMaxConns)
	}
	if m.DataDir != "/from/flag" {
		t.Errorf("data %q: the command line must win", m.DataDir)
	}
	t.Setenv("CUNXIANG_MQTT_MAX_CONNS", "many")
	if err := NewMain().ParseFlags(nil); err == nil {
		t.Error("a bad CUNXIANG_MQTT_MAX_CONNS was accepted")
	}
}
