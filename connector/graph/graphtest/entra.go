package graphtest

import (
	"context"

	"github.com/serversync/serversync/auth/aadtest"
)

// GraphAudience is the audience of the access tokens Graph accepts.
const GraphAudience = "https://graph.microsoft.com"

// EntraAuthenticator is an Options.Authenticate that accepts the app-only
// access tokens the fake Entra ID issues for Graph, as Graph does: the
// signature, issuer, audience and expiry are verified, and the token's tenant,
// application and roles become the principal.
func EntraAuthenticator(entra *aadtest.Server) func(context.Context, string) (Principal, error) {
	return func(_ context.Context, token string) (Principal, error) {
		claims, err := entra.VerifyAccessToken(token, GraphAudience)
		if err != nil {
			return Principal{}, err
		}
		return Principal{AppOnly: true, TenantID: claims.TenantID, AppID: claims.AppID, Permissions: claims.Roles}, nil
	}
}
