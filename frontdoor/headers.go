package frontdoor

import "strings"

// Spoofable reports whether a request header named name is one a client
// could use to pose as the gateway, as another user or as another client,
// or to make an app see another URL or method than the one decided on.
// The proxy deletes every such header before adding the gateway's own.
//
// That is: every name with an underscore (CGI, WSGI, PHP and Apache's
// REMOTE_USER-style variables fold X_Webauth_User into the same variable
// as X-Webauth-User; nginx drops these names by default too), and every
// name in spoofableRules, compared case-insensitively with '_' read as
// '-'. An app's configuration may let some through (Pinned ones never).
func Spoofable(name string) bool {
	if strings.IndexByte(name, '_') >= 0 {
		return true
	}
	if len(name) == 0 {
		return false
	}
	if len(name) < len(spoofableExact) {
		for _, n := range spoofableExact[len(name)] {
			if hasPrefixFold(name, n) {
				return true
			}
		}
	}
	c := name[0] | 0x20 // lower case for letters
	for _, p := range spoofablePrefixes {
		if p[0] == c && hasPrefixFold(name, p) {
			return true
		}
	}
	return false
}

// Pinned reports whether name is a header the gateway itself sets or
// removes for every request: its own X-Sluis-* and the forwarding headers
// Forwarded and X-Forwarded-For/-Host/-Proto. No app may keep a client's
// copy of these nor have them set to anything else.
func Pinned(name string) bool {
	if strings.IndexByte(name, '_') >= 0 {
		name = strings.ReplaceAll(name, "_", "-")
	}
	if hasPrefixFold(name, "x-sluis-") {
		return true
	}
	for _, n := range []string{"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"} {
		if len(n) == len(name) && hasPrefixFold(name, n) {
			return true
		}
	}
	return false
}

// HeaderNameIs reports whether name is lower (lower case, '-' for
// separators), ignoring case and reading '_' as '-'. It does not allocate.
func HeaderNameIs(name, lower string) bool {
	return len(name) == len(lower) && hasPrefixFold(name, lower)
}

// spoofRule is one name (or, with prefix, a family of names) that a client
// must not send to an app.
type spoofRule struct {
	name   string // lower case
	prefix bool   // every name that starts with name
}

// spoofableRules are the headers dropped from every client request by
// default, with who trusts each: auth proxies and servers that log a user
// in from a header, load balancers and CDNs whose client-address headers
// apps log and rate-limit by, and URL and method overrides that frameworks
// honour. Prefix rules are used only where a product's family of names is
// open-ended and nobody else uses the prefix; "Remote-" is not one of them
// (Authelia's names are listed one by one).
var spoofableRules = []spoofRule{
	// sluis's own identity and assertion headers.
	{"x-sluis-", true},
	// Forwarding (RFC 7239) and the de facto X-Forwarded-* family: origin
	// (-For, -Host, -Proto, -Port, -Ssl, -Scheme, -Server), path
	// (-Prefix, -Path, -Uri: Traefik, Spring, ASP.NET), and oauth2-proxy's
	// and Traefik forward-auth's identity (-User, -Email, -Groups,
	// -Preferred-Username, -Access-Token); Envoy/Istio -Client-Cert.
	{"forwarded", false},
	{"x-forwarded", false},
	{"x-forwarded-", true},
	{"x-original-forwarded-for", false}, // ingress-nginx
	// Client address variants trusted by frameworks and log pipelines.
	{"x-real-ip", false},           // nginx realip, many frameworks
	{"x-client-ip", false},         // Express (request-ip), Rails, Django middlewares
	{"client-ip", false},           // request-ip, Symfony
	{"true-client-ip", false},      // Akamai, Cloudflare Enterprise
	{"cf-connecting-ip", false},    // Cloudflare
	{"cf-connecting-ipv6", false},  // Cloudflare
	{"cf-visitor", false},          // Cloudflare: the client's scheme
	{"cf-ipcountry", false},        // Cloudflare: geo decisions
	{"fastly-client-ip", false},    // Fastly
	{"x-cluster-client-ip", false}, // Rackspace, Riverbed, request-ip
	{"x-originating-ip", false},    // Microsoft (Exchange, Office 365)
	{"x-remote-ip", false},         // assorted PHP and Java frameworks
	{"x-remote-addr", false},       // assorted PHP and Java frameworks
	{"remote-addr", false},         // CGI's REMOTE_ADDR with dashes
	{"x-proxyuser-ip", false},      // Google (IAP, App Engine)
	{"x-appengine-user-ip", false}, // Google App Engine
	{"x-azure-clientip", false},    // Azure Front Door
	{"x-azure-socketip", false},    // Azure Front Door
	{"x-host", false},              // Symfony, Laravel, Express host overrides
	{"x-original-host", false},     // ingress-nginx, IIS ARR
	{"x-scheme", false},            // ingress-nginx
	{"x-url-scheme", false},        // Werkzeug/Flask, Rack
	{"front-end-https", false},     // Microsoft (OWA, IIS)
	{"x-arr-ssl", false},           // IIS Application Request Routing
	{"x-arr-clientcert", false},    // IIS ARR: the client certificate
	// Client-certificate identity passed by TLS terminators.
	{"x-client-cert", false},   // AWS ALB mTLS, Spring
	{"ssl-client-", true},      // ingress-nginx ssl-client-cert/-verify/-subject-dn
	{"x-ssl-client-", true},    // HAProxy and nginx conventions
	{"x-client-verify", false}, // nginx convention
	// Auth-proxy identity headers.
	{"x-webauth-", true},                 // Grafana auth.proxy, Gitea and Forgejo reverse-proxy login (X-WEBAUTH-USER/-EMAIL/-FULLNAME)
	{"x-auth-", true},                    // oauth2-proxy X-Auth-Request-*, Keycloak Gatekeeper/Louketo X-Auth-Userid/-Email/-Groups/-Roles/-Token, X-Auth-User
	{"remote-user", false},               // Authelia, Authentik, Caddy forward_auth; Apache REMOTE_USER
	{"remote-groups", false},             // Authelia
	{"remote-email", false},              // Authelia
	{"remote-name", false},               // Authelia
	{"x-remote-user", false},             // Kubernetes front proxy, Apache conventions
	{"x-remote-group", false},            // Kubernetes front proxy
	{"x-remote-extra-", true},            // Kubernetes front proxy
	{"x-authentik-", true},               // Authentik (username, groups, email, name, uid, jwt, meta-*)
	{"x-authenticated-user", false},      // Envoy ext_authz examples, Istio
	{"x-authenticated-userid", false},    // Kong
	{"x-authenticated-groups", false},    // Kong
	{"x-consumer-", true},                // Kong (-Id, -Username, -Custom-Id, -Groups)
	{"x-credential-identifier", false},   // Kong
	{"x-user", false},                    // Ory Oathkeeper, assorted apps
	{"x-username", false},                // assorted apps
	{"x-user-id", false},                 // assorted apps
	{"x-user-email", false},              // assorted apps
	{"x-user-name", false},               // assorted apps
	{"x-user-groups", false},             // assorted apps
	{"x-email", false},                   // assorted apps
	{"x-pomerium-", true},                // Pomerium (-Jwt-Assertion, -Claim-*)
	{"x-vouch-", true},                   // Vouch Proxy (-User, -Idp-Claims-*)
	{"teleport-jwt-assertion", false},    // Teleport application access
	{"x-goog-authenticated-user-", true}, // Google IAP (-Email, -Id)
	{"x-goog-iap-jwt-assertion", false},  // Google IAP
	{"x-amzn-oidc-", true},               // AWS ALB OIDC (-Data, -Identity, -Accesstoken)
	{"x-ms-client-principal", true},      // Azure App Service Easy Auth (-Name, -Id, -Idp)
	{"x-ms-token-", true},                // Azure App Service Easy Auth
	{"cf-access-", true},                 // Cloudflare Access (-Authenticated-User-Email, -Jwt-Assertion)
	{"oidc-claim-", true},                // Apache mod_auth_openidc (OIDC_CLAIM_* with dashes)
	{"shib-", true},                      // Shibboleth SP
	{"x-sandstorm-", true},               // Sandstorm (-Username, -User-Id, -Permissions)
	{"x-pan-authcheck", false},           // Palo Alto PAN-OS, CVE-2024-0012
	// URL overrides: the app would route on another path than the one
	// decided on.
	{"x-original-url", false},     // IIS, Symfony, Zend/Laminas
	{"x-rewrite-url", false},      // IIS, Symfony, Zend/Laminas
	{"x-original-uri", false},     // nginx auth_request convention
	{"x-original-path", false},    // assorted
	{"x-override-url", false},     // assorted
	{"x-envoy-", true},            // Envoy and Istio internal headers (X-Envoy-Original-Path, -Internal, -External-Address)
	{"x-istio-attributes", false}, // Istio
	// Method overrides: the app would run another method than the one
	// decided on.
	{"x-http-method-override", false}, // Google APIs, Express method-override, Rails, Laravel
	{"x-method-override", false},      // assorted
	{"x-http-method", false},          // OData, ASP.NET
	{"x-original-method", false},      // nginx auth_request convention
	// Framework-internal signals.
	{"x-middleware-", true}, // Next.js (x-middleware-subrequest: CVE-2025-29927)
}

var (
	spoofableExact    [48][]string // by length
	spoofablePrefixes []string
)

func init() {
	for _, r := range spoofableRules {
		if r.prefix {
			spoofablePrefixes = append(spoofablePrefixes, r.name)
		} else {
			spoofableExact[len(r.name)] = append(spoofableExact[len(r.name)], r.name)
		}
	}
}

// SpoofableNames lists the default rules, prefixes ending in '-' then '*'
// (for documentation and tests).
func SpoofableNames() []string {
	var out []string
	for _, r := range spoofableRules {
		if r.prefix {
			out = append(out, r.name+"*")
		} else {
			out = append(out, r.name)
		}
	}
	return out
}
