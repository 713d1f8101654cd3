"""The service's routers, one per area; `aldlab.serve.app.create_app` includes them."""
