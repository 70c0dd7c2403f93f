// Railway Infrastructure as Code (`railway config plan`, then `railway config apply`): the prediction service (`api`),
// the Voila dashboard (`dashboard`) and the Redis the api's rate limit lives in. Step by step: deploy/README.md.
// tests/test_deploy.py checks this file against the Dockerfile and .env.example.
//
// Railway builds the repository's Dockerfile and has no setting for its target, so both services get the last stage,
// `dashboard`. The `api` stage adds nothing but EXPOSE, HEALTHCHECK and CMD to the same `base`, so the api service runs
// that image with the api target's command. On Railway a start command replaces the image's ENTRYPOINT too, hence the
// entrypoint script (it syncs the model bundles from ITFF_ARTIFACT_BASE_URL) at its head.
//
// Secrets live in Railway: `ctx.shared.NAME` refers to a shared variable of the environment (Project Settings →
// Shared Variables) that you set before applying; this file never holds a value for one.
import { defineRailway, github, project, redis, service } from "railway/iac";

// Your fork of ITFF on GitHub.
const REPO = "itff/itff";

export default defineRailway((ctx) => {
  const cache = redis("redis");

  const api = service("api", {
    source: github(REPO, { branch: "main" }),
    start: "/app/deploy/docker-entrypoint.sh uvicorn itff.api:app --host 0.0.0.0 --port 8000 --workers 1",
    healthcheck: "/health",
    env: {
      PORT: "8000",
      ITFF_API_TOKEN: ctx.shared.ITFF_API_TOKEN,
      ITFF_WEBHOOK_SECRET: ctx.shared.ITFF_WEBHOOK_SECRET,
      ITFF_ARTIFACT_BASE_URL: ctx.shared.ITFF_ARTIFACT_BASE_URL,
      ITFF_API_RATE_LIMIT: "60/minute",
      ITFF_API_RATE_LIMIT_STORAGE: cache.env.REDIS_URL,
      PROMETHEUS_MULTIPROC_DIR: "/tmp/itff-prometheus",
    },
  });

  const dashboard = service("dashboard", {
    source: github(REPO, { branch: "main" }),
    healthcheck: "/health",
    env: {
      PORT: "8050",
      ITFF_DASH_USERNAME: ctx.shared.ITFF_DASH_USERNAME,
      ITFF_DASH_PASSWORD: ctx.shared.ITFF_DASH_PASSWORD,
      ITFF_ARTIFACT_BASE_URL: ctx.shared.ITFF_ARTIFACT_BASE_URL,
    },
  });

  return project("itff", {
    resources: [cache, api, dashboard],
  });
});
