package tenantauth

import (
	"fmt"
	"io"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/endpoints/handlers/negotiation"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kplex/kplex/tenant"
)

// tokenReviewsPath is where TokenReviews are created.
const tokenReviewsPath = "/apis/authentication.k8s.io/v1/tokenreviews"

// WithTokenReviews answers TokenReviews created on a tenant's path for that
// tenant. Upstream's TokenReview storage authenticates the token with a
// request of its own, outside the caller's context, where every token would
// be judged as root's. It sits behind authentication and authorization, so
// the caller may create TokenReviews in the tenant.
func WithTokenReviews(h http.Handler, authn authenticator.Request, apiAudiences authenticator.Audiences) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		t := tenant.FromContext(req.Context())
		if req.Method != http.MethodPost || req.URL.Path != tokenReviewsPath || t == tenant.Root || t == tenant.Wildcard {
			h.ServeHTTP(w, req)
			return
		}
		review, err := reviewToken(req, t, authn, apiAudiences)
		if err != nil {
			responsewriters.ErrorNegotiated(err, scheme.Codecs, authenticationv1.SchemeGroupVersion, w, req)
			return
		}
		responsewriters.WriteObjectNegotiated(scheme.Codecs, negotiation.DefaultEndpointRestrictions, authenticationv1.SchemeGroupVersion, w, req, http.StatusCreated, review, false)
	})
}

func reviewToken(req *http.Request, t string, authn authenticator.Request, apiAudiences authenticator.Audiences) (*authenticationv1.TokenReview, error) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 3<<20))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("reading the TokenReview: %v", err))
	}
	review := &authenticationv1.TokenReview{}
	if _, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, review); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("decoding the TokenReview: %v", err))
	}
	if review.Spec.Token == "" {
		return nil, apierrors.NewBadRequest("token is required for TokenReview in authentication")
	}
	// Judge the token as it would be judged on this tenant's path.
	probe := (&http.Request{Header: http.Header{}}).WithContext(tenant.WithTenant(req.Context(), t))
	probe.Header.Set("Authorization", "Bearer "+review.Spec.Token)
	audiences := authenticator.Audiences(review.Spec.Audiences)
	if len(audiences) == 0 {
		audiences = apiAudiences
	}
	if len(audiences) > 0 {
		probe = probe.WithContext(authenticator.WithAudiences(probe.Context(), audiences))
	}
	resp, ok, err := authn.AuthenticateRequest(probe)
	review.Status = authenticationv1.TokenReviewStatus{Authenticated: ok}
	if err != nil {
		review.Status.Error = err.Error()
	}
	if ok && len(audiences) > 0 && len(audiences.Intersect(resp.Audiences)) == 0 {
		return nil, apierrors.NewInternalError(fmt.Errorf("the authenticator returned no requested audience"))
	}
	if ok && resp != nil && resp.User != nil {
		review.Status.User = authenticationv1.UserInfo{
			Username: resp.User.GetName(),
			UID:      resp.User.GetUID(),
			Groups:   resp.User.GetGroups(),
			Extra:    map[string]authenticationv1.ExtraValue{},
		}
		for k, v := range resp.User.GetExtra() {
			review.Status.User.Extra[k] = v
		}
		review.Status.Audiences = resp.Audiences
	}
	return review, nil
}
