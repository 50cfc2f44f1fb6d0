package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// Caller is an authenticated request: who sent it and the namespace it acts in.
type Caller struct {
	User authnv1.UserInfo
	// Namespace is the service account's namespace, or the NamespaceHeader's when sent.
	Namespace string
}

// Key identifies the caller for rate limits and "latest job" lookups: a hash of the user
// name, usable as a label value.
func (c Caller) Key() string {
	sum := sha256.Sum256([]byte(c.User.Username))
	return hex.EncodeToString(sum[:])[:40]
}

// access is one action to authorise.
type access struct {
	Verb      string
	Resource  string
	Namespace string
	Name      string
}

func (a access) String() string {
	where := "cluster-wide"
	if a.Namespace != "" {
		where = "in namespace " + a.Namespace
	}
	return fmt.Sprintf("%s %s.%s %s", a.Verb, a.Resource, sdfleetv1alpha1.GroupVersion.Group, where)
}

// authenticator asks the API server who a token is (TokenReview) and what it may do
// (SubjectAccessReview), keeping answers for a short while so that a busy caller does not
// cost two API calls per request.
type authenticator struct {
	kube kubernetes.Interface
	ttl  time.Duration
	now  func() time.Time

	mu     sync.Mutex
	tokens map[string]cachedUser
	grants map[string]cachedGrant
}

type cachedUser struct {
	user    authnv1.UserInfo
	ok      bool
	reason  string
	expires time.Time
}

type cachedGrant struct {
	allowed bool
	reason  string
	expires time.Time
}

// maxCachedAnswers bounds each cache of the authenticator.
const maxCachedAnswers = 10000

func newAuthenticator(kube kubernetes.Interface, ttl time.Duration) *authenticator {
	return &authenticator{kube: kube, ttl: ttl, now: time.Now,
		tokens: map[string]cachedUser{}, grants: map[string]cachedGrant{}}
}

// authenticate resolves the request's bearer token and its namespace. The namespace is the
// NamespaceHeader when sent, else the service account's; a caller that is neither gets a 400
// asking for the header.
func (a *authenticator) authenticate(ctx context.Context, r *http.Request) (Caller, *Error) {
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !found || token == "" {
		return Caller{}, &Error{Status: http.StatusUnauthorized, Code: "missing_token",
			Message: "Authorization: want \"Bearer <token>\" with a Kubernetes token (a service account token, for example from `kubectl create token`)"}
	}
	user, err := a.review(ctx, token)
	if err != nil {
		return Caller{}, err
	}
	c := Caller{User: user}
	if ns := r.Header.Get(NamespaceHeader); ns != "" {
		c.Namespace = ns
	} else if ns, ok := serviceAccountNamespace(user.Username); ok {
		c.Namespace = ns
	} else {
		return Caller{}, &Error{Status: http.StatusBadRequest, Field: NamespaceHeader, Code: "missing_namespace",
			Message: fmt.Sprintf("%s: user %q is not a service account; name the namespace to act in with this header", NamespaceHeader, user.Username)}
	}
	return c, nil
}

func (a *authenticator) review(ctx context.Context, token string) (authnv1.UserInfo, *Error) {
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	a.mu.Lock()
	cached, hit := a.tokens[key]
	a.mu.Unlock()
	if !hit || !a.now().Before(cached.expires) {
		tr, err := a.kube.AuthenticationV1().TokenReviews().Create(ctx,
			&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			return authnv1.UserInfo{}, &Error{Status: http.StatusServiceUnavailable, Code: "token_review_failed",
				Message: fmt.Sprintf("the API server could not review the token: %v", err)}
		}
		cached = cachedUser{user: tr.Status.User, ok: tr.Status.Authenticated, reason: tr.Status.Error,
			expires: a.now().Add(a.ttl)}
		a.mu.Lock()
		if len(a.tokens) >= maxCachedAnswers {
			clear(a.tokens) // a flood of distinct tokens must not grow the cache without bound
		}
		a.tokens[key] = cached
		a.mu.Unlock()
	}
	if !cached.ok {
		msg := "the API server did not accept the bearer token"
		if cached.reason != "" {
			msg += ": " + cached.reason
		}
		return authnv1.UserInfo{}, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Message: msg}
	}
	return cached.user, nil
}

// authorize asks the API server whether the caller may perform each action; the first refusal
// is a 403 naming the verb, the resource and the namespace.
func (a *authenticator) authorize(ctx context.Context, c Caller, actions ...access) *Error {
	for _, act := range actions {
		key := strings.Join([]string{c.User.Username, c.User.UID, strings.Join(c.User.Groups, ","),
			act.Verb, act.Resource, act.Namespace, act.Name}, "\x00")
		a.mu.Lock()
		cached, hit := a.grants[key]
		a.mu.Unlock()
		if !hit || !a.now().Before(cached.expires) {
			extra := map[string]authzv1.ExtraValue{}
			for k, v := range c.User.Extra {
				extra[k] = authzv1.ExtraValue(v)
			}
			sar, err := a.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
				Spec: authzv1.SubjectAccessReviewSpec{
					User: c.User.Username, UID: c.User.UID, Groups: c.User.Groups, Extra: extra,
					ResourceAttributes: &authzv1.ResourceAttributes{
						Group: sdfleetv1alpha1.GroupVersion.Group, Version: sdfleetv1alpha1.GroupVersion.Version,
						Resource: act.Resource, Verb: act.Verb, Namespace: act.Namespace, Name: act.Name,
					},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return &Error{Status: http.StatusServiceUnavailable, Code: "access_review_failed",
					Message: fmt.Sprintf("the API server could not review access (%s): %v", act, err)}
			}
			cached = cachedGrant{allowed: sar.Status.Allowed && !sar.Status.Denied, reason: sar.Status.Reason,
				expires: a.now().Add(a.ttl)}
			a.mu.Lock()
			if len(a.grants) >= maxCachedAnswers {
				clear(a.grants)
			}
			a.grants[key] = cached
			a.mu.Unlock()
		}
		if !cached.allowed {
			return &Error{Status: http.StatusForbidden, Code: "forbidden",
				Message: fmt.Sprintf("user %q may not %s", c.User.Username, act)}
		}
	}
	return nil
}

// sweep drops expired answers; the server calls it periodically so that the caches stay as
// small as the set of active callers.
func (a *authenticator) sweep() {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range a.tokens {
		if !now.Before(v.expires) {
			delete(a.tokens, k)
		}
	}
	for k, v := range a.grants {
		if !now.Before(v.expires) {
			delete(a.grants, k)
		}
	}
}

// serviceAccountNamespace is the namespace of a service account's user name,
// system:serviceaccount:<namespace>:<name>.
func serviceAccountNamespace(username string) (string, bool) {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	if !ok {
		return "", false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" || strings.Contains(name, ":") {
		return "", false
	}
	return ns, true
}
