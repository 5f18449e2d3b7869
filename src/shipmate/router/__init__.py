"""The router: routes and endpoints in the store -> nginx config -> a dedicated nginx.

See docs/router.md.
"""
