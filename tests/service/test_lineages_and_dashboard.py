"""GET /models (the lineages) and the dashboard's static page at /ui."""

from __future__ import annotations

from tests.service.test_models import make_version


def test_lineages_list_their_version_count_and_latest_and_a_lineage_key_sees_only_its_own(api):
    make_version(api.settings, "news", promote=True)
    make_version(api.settings, "news", promote=False)
    make_version(api.settings, "alpha", promote=False)
    with api.client(api.key()) as client:
        listed = client.get("/models").json()["data"]
    with api.client(api.key(scopes=["models:read"], lineage="news")) as client:
        own = client.get("/models").json()["data"]
    with api.client() as client:
        anonymous = client.get("/models")
    assert [(x["name"], x["version_count"], x["latest_version"]) for x in listed] == [
        ("alpha", 1, None), ("news", 2, 1)]
    assert listed[1]["base_model"] == "tiny-smollm2"
    assert [x["name"] for x in own] == ["news"]
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"


def test_the_dashboard_is_served_with_a_strict_content_security_policy_and_nothing_else_under_ui(api):
    with api.client() as client:
        page = client.get("/ui")
        script = client.get("/ui/dashboard.js")
        redirected = client.get("/ui/", follow_redirects=False)
        unknown = client.get("/ui/index.html")
        traversal = client.get("/ui/..%2F..%2Fpyproject.toml")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/dashboard.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "fetch(" in script.text and "innerHTML" not in script.text
    assert redirected.status_code == 308 and redirected.headers["location"] == "/ui"
    assert unknown.status_code == 404 and traversal.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
