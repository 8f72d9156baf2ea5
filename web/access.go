package web

import (
	"context"
	"net/http"
	"strings"

	"github.com/runnel/runnel/ingest/access"
)

// The permission model (AuthOptions.Access) over HTTP. After the role
// check, a request of an HTTP Basic user or an anonymous client
// (access.Anonymous) needs:
//
//	GET  /topics/{t}/…/records, /topics/{t}/tail   Read on t
//	GET  /topics/{t}…, /api/topics/{t}/offsets       Describe on t
//	POST /topics/{t}…                                Write on t
//	POST /api/routes/{name}/pause|resume             Alter on the cluster
//	GET  /topics, /api/topics                        lists only the topics it may Describe
//	POST /mqtt/publish, /api/v5/publish…             Write on the log topic the MQTT routes store it in (checked by Options.MQTTPublish through Principal)
//
// A refusal is 403 naming the user, the operation and the topic. The other
// read endpoints (status, metrics, dashboard) need the read role only.

type principalKey struct{}

// Principal returns the user a request was authorized as under
// AuthOptions.Access (access.Anonymous for an anonymous client); ok is
// false without an access policy or for a bearer token.
func Principal(ctx context.Context) (user string, ok bool) {
	user, ok = ctx.Value(principalKey{}).(string)
	return user, ok
}

// check applies the policy to one request of user.
func (au *authenticator) check(r *http.Request, user string) *apiError {
	if t := r.PathValue("t"); t != "" {
		op := access.Describe
		switch {
		case r.Method == http.MethodPost:
			op = access.Write
		case strings.HasSuffix(r.URL.Path, "/records") || strings.HasSuffix(r.URL.Path, "/tail"):
			op = access.Read
		}
		if !au.policy.Allowed(user, access.Topic, t, op) {
			return errf(http.StatusForbidden, codeForbidden, "user "+user+" may not "+op.String()+" topic "+t)
		}
	}
	if r.PathValue("name") != "" && r.Method == http.MethodPost && !au.policy.Allowed(user, access.Cluster, access.ClusterName, access.Alter) {
		return errf(http.StatusForbidden, codeForbidden, "user "+user+" may not pause or resume routes (alter on the cluster)")
	}
	return nil
}

// visible reports whether the request's principal may see topic in a
// listing.
func (s *Server) visible(r *http.Request, topic string) bool {
	user, ok := Principal(r.Context())
	return !ok || s.auth.policy.Allowed(user, access.Topic, topic, access.Describe)
}
