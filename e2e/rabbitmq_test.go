package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/rabbittest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Issue 12, "How it is checked": RabbitMQ's management API names the
// default vhost "/" as %2F. Through an app with encoded_slashes: pass it
// answers, with RabbitMQ's own basic auth on top of the gateway's login;
// an app without the setting refuses the same paths with 400 and RabbitMQ
// never sees them.
func TestRabbitMQManagementAPIWithEncodedSlashes(t *testing.T) {
	t.Parallel()
	b := rabbittest.Start(t)
	t.Logf("RabbitMQ booted in %v", b.BootTime.Round(time.Millisecond))
	const rabbitHost, strictHost = "rabbitmq.sluis.test", "mq.sluis.test"
	g := testenv.Start(t,
		testenv.App{Name: "rabbitmq", Host: rabbitHost, Upstream: b.URL, Groups: []string{"staff"}, MFA: true, EncodedSlashes: true},
		testenv.App{Name: "mq", Host: strictHost, Upstream: b.URL, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	if p := g.Login(c, g.URL(rabbitHost, "/"), "anna", pw, secret); p.StatusCode != http.StatusOK || p.Request.URL.Hostname() != rabbitHost {
		t.Fatalf("login: %d at %s", p.StatusCode, p.Request.URL)
	}
	if p := g.Follow(c, g.Get(c, g.URL(strictHost, "/"))); p.StatusCode != http.StatusOK || p.Request.URL.Hostname() != strictHost {
		t.Fatalf("opening mq: %d at %s", p.StatusCode, p.Request.URL)
	}
	markers := 0
	for _, proto := range []string{"HTTP/2.0", "HTTP/1.1"} {
		logged, anonymous := c, g.Client()
		if proto == "HTTP/1.1" {
			logged, anonymous = g.HTTP1(c), g.HTTP1(anonymous)
		}
		queue := "orders-" + strings.NewReplacer("/", "", ".", "").Replace(proto)
		for _, tc := range []struct {
			name         string
			client       *http.Client
			host, method string
			path, body   string
			basicAuth    bool
			want         int
			wantBody     string // in the answer
			reaches      bool   // RabbitMQ sees the request
		}{
			{"the default vhost", logged, rabbitHost, "GET", "/api/vhosts/%2F", "", true, 200, `"name":"/"`, true},
			{"declare a queue in it", logged, rabbitHost, "PUT", "/api/queues/%2F/" + queue, `{"durable":true}`, true, 201, "", true},
			{"its queues", logged, rabbitHost, "GET", "/api/queues/%2F", "", true, 200, `"name":"` + queue + `"`, true},
			{"the queue", logged, rabbitHost, "GET", "/api/queues/%2F/" + queue, "", true, 200, `"vhost":"/"`, true},
			{"RabbitMQ's own login still counts", logged, rabbitHost, "GET", "/api/vhosts/%2F", "", false, 401, "", true},
			{"no gateway session", anonymous, rabbitHost, "GET", "/api/vhosts/%2F", "", true, 400, "", false},
			{"an app without encoded_slashes", logged, strictHost, "GET", "/api/vhosts/%2F", "", true, 400, "", false},
			{"an app without encoded_slashes, queues", logged, strictHost, "GET", "/api/queues/%2F", "", true, 400, "", false},
			{"an app without encoded_slashes, no %2F", logged, strictHost, "GET", "/api/vhosts", "", true, 200, `"name":"/"`, true},
		} {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				before := len(strings.Split(b.HTTPLog(), "\n"))
				req, err := http.NewRequest(tc.method, g.URL(tc.host, tc.path), strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				if tc.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				if tc.basicAuth {
					req.SetBasicAuth(b.User, b.Password)
				}
				resp, err := tc.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want || !strings.Contains(string(body), tc.wantBody) || resp.Proto != proto {
					t.Fatalf("%s %s %s: %s %d, want %s %d with %s\n%.300s", proto, tc.method, tc.path, resp.Proto, resp.StatusCode, proto, tc.want, tc.wantBody, body)
				}
				// Whether RabbitMQ saw it: its HTTP log, up to a request
				// of our own sent after this one.
				markers++
				marker := fmt.Sprintf("/api/vhosts/marker-%d", markers)
				mreq, _ := http.NewRequest("GET", b.URL+marker, nil)
				if mresp, err := (&http.Client{Timeout: 5 * time.Second}).Do(mreq); err != nil {
					t.Fatal(err)
				} else {
					mresp.Body.Close()
				}
				lines := strings.Split(waitFor(t, 10*time.Second, func() string {
					if l := b.HTTPLog(); strings.Contains(l, `"GET `+marker+` `) {
						return l
					}
					return ""
				}), "\n")
				seen := false
				for _, l := range lines[before-1:] {
					seen = seen || strings.Contains(l, `"`+tc.method+" "+tc.path+" ")
				}
				if seen != tc.reaches {
					t.Errorf("RabbitMQ saw %s %s: %v, want %v\n%s", tc.method, tc.path, seen, tc.reaches, strings.Join(lines[before-1:], "\n"))
				}
			})
		}
	}
}
