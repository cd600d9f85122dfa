"""An integration's OAuth 2.0 client of Authlib (PyPI), driven by voltbus's tests: it finds the
token endpoint in the server's RFC 8414 metadata and gets tokens the standard way.

    oauth_client.py BASE_URL CLIENT_ID CLIENT_SECRET

Steps, one JSON line each on stdout: the metadata; a token by HTTP Basic (client_secret_basic) and
a call of the partner API with it; a token by the form (client_secret_post) narrowed to one
permission, a call it may make and one it may not; then the errors a wrong secret, an unknown
scope and another grant type get (RFC 6749 §5.2 codes, as Authlib reads them).
"""

import sys

import requests
from authlib.integrations.requests_client import OAuth2Session
from peer import say


def main():
    base, client_id, client_secret = sys.argv[1:4]
    metadata = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    say("metadata", issuer=metadata["issuer"], token_endpoint=metadata["token_endpoint"],
        methods=metadata["token_endpoint_auth_methods_supported"], grants=metadata["grant_types_supported"])
    token_url = metadata["token_endpoint"]

    basic = OAuth2Session(client_id, client_secret, token_endpoint_auth_method="client_secret_basic")
    token = basic.fetch_token(token_url, grant_type="client_credentials")
    me = basic.get(f"{base}/api/partner/v1/vehicles", timeout=10)
    say("basic", token_type=token["token_type"], scope=token.get("scope"), expires_in=token["expires_in"],
        vehicles=me.status_code)

    narrow = OAuth2Session(client_id, client_secret, token_endpoint_auth_method="client_secret_post",
                           scope="vehicles:read")
    token = narrow.fetch_token(token_url, grant_type="client_credentials")
    read = narrow.get(f"{base}/api/partner/v1/vehicles", timeout=10)
    write = narrow.post(f"{base}/api/partner/v1/customers", json={"email": "oauth@example.com"}, timeout=10)
    say("narrowed", scope=token.get("scope"), read=read.status_code, write=write.status_code,
        write_code=write.json().get("error", {}).get("code"))

    for case, session, grant in [
        ("wrong_secret", OAuth2Session(client_id, client_secret[:-1] + ("A" if client_secret[-1] != "A" else "B")), "client_credentials"),
        ("unknown_scope", OAuth2Session(client_id, client_secret, scope="vehicles:read moon:land"), "client_credentials"),
        ("other_grant", OAuth2Session(client_id, client_secret), "password"),
    ]:
        try:
            session.fetch_token(token_url, grant_type=grant, username="u", password="p")
            say(case, error=None)
        except Exception as error:  # Authlib raises its OAuthError with the §5.2 code
            say(case, error=getattr(error, "error", type(error).__name__))


main()
