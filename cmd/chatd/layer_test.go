package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	chat "github.com/chatd/chat"
)

// parseLayer reads the channel layer's settings from args and env as the
// commands that take them do.
func parseLayer(args []string, env map[string]string) (layerSettings, error) {
	e := commandFlags("layer check", "chatd layer check", "", func(k string) string { return env[k] }, io.Discard)
	var l layerSettings
	e.layerFlags(&l, prefixFromDatabase)
	if err := e.parse(args, 0); err != nil {
		return l, err
	}
	return l, l.validate(e.fs)
}

func TestLayerSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		kind    string
		url     string
		wantErr string // a substring of the error; "" for success
	}{
		{name: "default is memory", kind: "memory"},
		{name: "memory explicitly", env: map[string]string{"CHANNEL_LAYER": "memory"}, kind: "memory"},
		{name: "kind is case-insensitive", env: map[string]string{"CHANNEL_LAYER": " Redis ", "REDIS_URL": "redis://r:6379/0"}, kind: "redis", url: "redis://r:6379/0"},
		{name: "REDIS_URL", env: map[string]string{"CHANNEL_LAYER": "redis", "REDIS_URL": "redis://:secret@cache.internal:6380/2"}, kind: "redis", url: "redis://:secret@cache.internal:6380/2"},
		{name: "rediss URL", env: map[string]string{"CHANNEL_LAYER": "redis", "REDIS_URL": "rediss://cache:6380/0"}, kind: "redis", url: "rediss://cache:6380/0"},
		{name: "IP_REDIS with default port", env: map[string]string{"CHANNEL_LAYER": "redis", "IP_REDIS": "10.0.0.5"}, kind: "redis", url: "redis://10.0.0.5:6379/0"},
		{name: "IP_REDIS and PORT_REDIS", env: map[string]string{"CHANNEL_LAYER": "redis", "IP_REDIS": "redis", "PORT_REDIS": "6380"}, kind: "redis", url: "redis://redis:6380/0"},
		{name: "IPv6 IP_REDIS", env: map[string]string{"CHANNEL_LAYER": "redis", "IP_REDIS": "::1", "PORT_REDIS": "6379"}, kind: "redis", url: "redis://[::1]:6379/0"},
		{name: "REDIS_URL wins over IP_REDIS", env: map[string]string{"CHANNEL_LAYER": "redis", "REDIS_URL": "redis://a:1/0", "IP_REDIS": "b", "PORT_REDIS": "2"}, kind: "redis", url: "redis://a:1/0"},
		{name: "memory keeps the address for a flag override", env: map[string]string{"REDIS_URL": "redis://a:1/0"}, kind: "memory", url: "redis://a:1/0"},
		{name: "flag selects redis", args: []string{"-channel-layer", "redis"}, env: map[string]string{"REDIS_URL": "redis://a:1/0"}, kind: "redis", url: "redis://a:1/0"},
		{name: "env redis, address as a flag", args: []string{"-redis-url", "redis://f:2/0"}, env: map[string]string{"CHANNEL_LAYER": "redis"}, kind: "redis", url: "redis://f:2/0"},
		{name: "flag address wins over env", args: []string{"-redis-url", "redis://f:2/0"}, env: map[string]string{"CHANNEL_LAYER": "redis", "REDIS_URL": "redis://e:1/0"}, kind: "redis", url: "redis://f:2/0"},
		{name: "flag address replaces a bad env one", args: []string{"-redis-url", "redis://f:2/0"}, env: map[string]string{"CHANNEL_LAYER": "redis", "PORT_REDIS": "x", "IP_REDIS": "r"}, kind: "redis", url: "redis://f:2/0"},
		{name: "flag kind replaces a bad env one", args: []string{"-channel-layer", "memory"}, env: map[string]string{"CHANNEL_LAYER": "rabbitmq"}, kind: "memory"},
		{name: "redis without address", env: map[string]string{"CHANNEL_LAYER": "redis"}, wantErr: "the redis channel layer needs the Redis address"},
		{name: "PORT_REDIS alone is no address", env: map[string]string{"CHANNEL_LAYER": "redis", "PORT_REDIS": "6379"}, wantErr: "needs the Redis address"},
		{name: "unknown kind", env: map[string]string{"CHANNEL_LAYER": "rabbitmq"}, wantErr: `must be memory, redis or channels_redis, not "rabbitmq"`},
		{name: "unknown kind as a flag", args: []string{"-channel-layer", "nats"}, wantErr: `must be memory, redis or channels_redis, not "nats"`},
		{name: "bad PORT_REDIS", env: map[string]string{"CHANNEL_LAYER": "redis", "IP_REDIS": "r", "PORT_REDIS": "63x9"}, wantErr: `PORT_REDIS must be a port number (1-65535), not "63x9"`},
		{name: "PORT_REDIS out of range", env: map[string]string{"CHANNEL_LAYER": "redis", "IP_REDIS": "r", "PORT_REDIS": "70000"}, wantErr: "PORT_REDIS must be a port number"},
		{name: "REDIS_URL with another scheme", env: map[string]string{"CHANNEL_LAYER": "redis", "REDIS_URL": "http://r:6379"}, wantErr: "REDIS_URL: http://r:6379 is not a redis://"},
		{name: "REDIS_URL without host", env: map[string]string{"CHANNEL_LAYER": "redis", "REDIS_URL": "redis:///0"}, wantErr: "has no host"},
		{name: "bad flag address", args: []string{"-redis-url", "http://r"}, wantErr: "is not a redis://"},
		{name: "error hides the password", env: map[string]string{"CHANNEL_LAYER": "redis", "REDIS_URL": "http://u:hunter2@r"}, wantErr: "http://u:xxxxx@r"},
		{name: "prefix with a space", env: map[string]string{"CHANNEL_PREFIX": "my app:"}, wantErr: "CHANNEL_PREFIX"},
		{name: "unknown flag", args: []string{"-bogus"}, wantErr: "flag provided but not defined: -bogus"},
		{name: "extra argument", args: []string{"now"}, wantErr: `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseLayer(tc.args, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Kind != tc.kind || l.RedisURL != tc.url {
				t.Errorf("got (%q, %q), want (%q, %q)", l.Kind, l.RedisURL, tc.kind, tc.url)
			}
		})
	}
}

func TestOpenLayer(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	recv := func(string, []byte) {}
	l, err := openLayer(ctx, "memory", "", "", recv, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Errorf("memory layer Err() = %v", err)
	}
	_ = l.Close()
	if _, err := openLayer(ctx, "nats", "", "", recv, log); err == nil || !strings.Contains(err.Error(), `unknown channel layer "nats"`) {
		t.Errorf("unknown kind: err = %v", err)
	}
	if _, err := openLayer(ctx, "redis", "", "", recv, log); err == nil {
		t.Error("redis without URL succeeded")
	}
	// A redis layer whose Redis is down still opens, degraded.
	l, err = openLayer(ctx, "redis", "redis://127.0.0.1:"+closedPort(t)+"/0", "", recv, log)
	if err != nil {
		t.Fatalf("redis layer with Redis down: %v", err)
	}
	defer l.Close()
	if err := l.Err(); chat.ErrorCode(err) != chat.EUNAVAILABLE {
		t.Errorf("Err() = %v, want an unavailable error", err)
	}
}

func TestLayerCheckMemory(t *testing.T) {
	var out bytes.Buffer
	if err := runLayerCheck(context.Background(), "memory", "", "", &out); err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out.String(), "memory layer: opened two instances", "received it back in", "OK: the memory layer works")
}

func TestLayerCheckRedis(t *testing.T) {
	url := os.Getenv("CHATD_TEST_REDIS_URL")
	if url == "" {
		t.Skip("CHATD_TEST_REDIS_URL is unset; set it (e.g. redis://127.0.0.1:6379/0) to run the Redis layer check")
	}
	var out bytes.Buffer
	if err := runLayerCheck(context.Background(), "redis", url, "", &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("output:\n%s", out.String())
	checkOutput(t, out.String(), "redis layer at "+url, "subscribed the receiver", "published", "received it back in", "OK: the redis layer")
}

// TestLayerCheckRedisDown checks that the check against a port where nothing
// listens fails with an error naming the address and the cause, promptly.
func TestLayerCheckRedisDown(t *testing.T) {
	url := "redis://127.0.0.1:" + closedPort(t) + "/0"
	done := make(chan error, 1)
	go func() { done <- runLayerCheck(context.Background(), "redis", url, "", io.Discard) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second): // a failure bound, not a measurement
		t.Fatal("layer check against a closed port did not return within 20s")
	}
	if err == nil {
		t.Fatal("layer check against a closed port succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"redis layer at " + url, "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestLayerCheckUnknownKind(t *testing.T) {
	if err := runLayerCheck(context.Background(), "carrier-pigeon", "", "", io.Discard); err == nil {
		t.Fatal("unknown layer succeeded")
	}
}

func checkOutput(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// closedPort returns a TCP port on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return strconv.Itoa(port)
}
