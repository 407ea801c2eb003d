//go:build bench

package main

// The benchmark command, linked only with -tags bench, so that the service
// binary carries neither the harness nor the agent builds it starts:
//
//	go run -tags bench ./controller bench -quick

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cunxiang/cunxiang/controller/internal/bench"
)

// runBench runs `controller bench` (see package bench), or the baseline
// subscribers it starts as child processes, and returns the exit status.
func runBench(ctx context.Context, cmd string, args []string) int {
	var err error
	if cmd == bench.SubscribersCommand {
		err = bench.Subscribers(ctx, args, os.Stdout)
	} else {
		var o *bench.Options
		if o, err = bench.ParseFlags(args, startForBench, os.Stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "controller bench:", err)
			return 2
		}
		o.Out = os.Stdout
		err = bench.Run(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "controller %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// startForBench starts a controller for the bench, in this process.
func startForBench(ctx context.Context, c bench.ControllerConfig) (*bench.Controller, error) {
	m := NewMain()
	m.DataDir, m.HTTPListener, m.Logger, m.Stdout = c.DataDir, c.HTTPListener, c.Logger, io.Discard
	m.Broker, m.BrokerUser, m.BrokerPassword = c.Broker, c.BrokerUser, c.BrokerPassword
	m.PreApproved = c.PreApproved
	m.Inbound = c.Inbound
	m.BoxReportRate = -1                           // the ingest phase sends thousands of events a box
	m.HTTPMaxConns, m.HTTPMaxConnsPerAddr = -1, -1 // every simulated box fetches its clips from 127.0.0.1
	ready := make(chan *Running, 1)
	m.Ready = func(r *Running) { ready <- r }
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case r := <-ready:
		return &bench.Controller{HTTPURL: r.HTTPURL, AdminToken: r.AdminToken, Store: r.Store, Done: done}, nil
	case err := <-done:
		return nil, err
	}
}
