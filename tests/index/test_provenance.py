"""PEP 740 provenance URLs in listings, and what the source reads of the documents."""

from __future__ import annotations

import json

from venvsmith.core.distfile import DistFile
from venvsmith.core.index.pages import parse_html_page, parse_json_page

PAGE = "http://127.0.0.1:1/simple/app/"


def test_listings_carry_the_provenance_url_made_absolute():
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": [
        {"filename": "app-1.0-py3-none-any.whl", "url": "../../files/app-1.0-py3-none-any.whl", "hashes": {},
         "provenance": "../../files/app-1.0-py3-none-any.whl.provenance"},
        {"filename": "app-1.0.tar.gz", "url": "../../files/app-1.0.tar.gz", "hashes": {}, "provenance": None},
    ]})
    wheel, sdist = parse_json_page(body, PAGE, PAGE, "app")
    assert wheel.provenance == "http://127.0.0.1:1/files/app-1.0-py3-none-any.whl.provenance"
    assert sdist.provenance is None
    (linked,) = parse_html_page(
        '<a href="/f/app-1.0-py3-none-any.whl" data-provenance="http://u:p@127.0.0.1:2/p.json">x</a>',
        PAGE, PAGE, "app",
    )
    assert linked.provenance == "http://127.0.0.1:2/p.json"  # credentials never kept in a URL


def test_a_remote_listing_cannot_point_provenance_at_the_resolvers_disk(make_source, tmp_path):
    secret = tmp_path / "secret.json"
    doc = {"attestation_bundles": [{"publisher": {"kind": "GitHub", "repository": "on/disk"}}]}
    secret.write_text(json.dumps(doc))
    source = make_source(index_url=(tmp_path / "none").as_uri())
    remote = DistFile.from_listing("app-1.0-py3-none-any.whl", "http://127.0.0.1:1/app-1.0-py3-none-any.whl",
                                   PAGE, provenance=secret.as_uri())
    local = DistFile.from_listing("app-1.0-py3-none-any.whl", (tmp_path / "app-1.0-py3-none-any.whl").as_uri(),
                                  tmp_path.as_uri(), provenance=secret.as_uri())
    assert source.attestation_identities([remote, local]) == [(), ({"kind": "GitHub", "repository": "on/disk"},)]
