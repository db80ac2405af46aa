FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY scripts/ scripts/
RUN python -m venv .tools && .tools/bin/pip install --quiet uv==0.13.9 \
 && UV_PROJECT_ENVIRONMENT=/app/.venv .tools/bin/uv sync --locked --no-dev --python python3.11
COPY . .
ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
CMD ["scripts/run.sh"]
