"""Cloud Controller's API over HTTP: the V3 (and V2) endpoints cf v8 and
cloudfoundry-client call, UAA's login and token endpoints, and log-cache's
reads, served by aiohttp on the platform's own event loop (`ApiServer`)."""
