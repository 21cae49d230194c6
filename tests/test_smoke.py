def test_register_then_get(api):
    assert api.register().status_code == 201
    assert api.agent().json["state"] == "LIVE"
