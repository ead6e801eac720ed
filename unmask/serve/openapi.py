"""The service's OpenAPI 3.1 description, written out (served at ``/v1/openapi.json``).

Written by hand rather than generated from type annotations: the service has six routes, and the
document then says exactly what the code does (status codes, limits), with no schema library.
"""
from __future__ import annotations

__all__ = ["openapi"]

_ERR = {"description": "Refused; the body names the reason and the limit",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_RESULTS = {"description": "One row per image (scan's columns, plus an optional heat map)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Results"}}}}
_HEAT = {"name": "heatmap", "in": "query", "schema": {"type": "boolean", "default": False},
         "description": "Add per-tile scores and their boxes (image pixels) to each row."}


def _row_schema() -> dict:
    num = {"type": ["number", "null"]}
    return {"type": "object", "properties": {
        "name": {"type": "string"}, "score": num, "label": {"enum": ["real", "fake", "out_of_domain", "error"]},
        "threshold": {"type": "number", "description": "this image's own (a tiled image's: its aggregate's)"},
        "error": {"type": ["string", "null"]},
        "in_domain": {"type": ["boolean", "null"], "description": "null: the detector has no domain model"},
        "domain_score": {"type": ["number", "null"], "description": "above 1: unlike the detector's training reals"},
        "status": {"type": "integer", "description": "200, or the 4xx this image alone would get"},
        "limit": {"type": ["string", "null"]}, "policy": {"type": "string"}, "n_tiles": {"type": "integer"},
        "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
        "heatmap": {"type": "object", "properties": {
            "boxes": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                      "description": "[x, y, w, h] of each tile in the image's own pixels"},
            "scores": {"type": "array", "items": {"type": "number"}}}}}}


def openapi(version: str, limits: dict) -> dict:
    secured = [{"bearer": []}]
    score_codes = {"200": _RESULTS, "400": _ERR, "401": _ERR, "408": _ERR, "413": _ERR, "415": _ERR,
                   "422": _ERR, "503": _ERR}
    return {
        "openapi": "3.1.0",
        "info": {"title": "unmask detection service", "version": version,
                 "description": "Score images with an unmask detector. Scores equal `unmask scan` on the same "
                                f"files. Limits: {limits}."},
        "paths": {
            "/v1/score": {"post": {
                "summary": "Score uploaded images (multipart/form-data, one file part per image)",
                "parameters": [_HEAT], "security": secured, "responses": score_codes,
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "properties": {"image": {"type": "array", "items": {
                        "type": "string", "format": "binary"}}}}}}}}},
            "/v1/score-path": {"post": {
                "summary": "Score images already on the server, inside a folder allowed with --allow-dir",
                "parameters": [_HEAT], "security": secured, "responses": {**score_codes, "403": _ERR},
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["paths"],
                    "properties": {"paths": {"type": "array", "items": {"type": "string"}}}}}}}}},
            "/v1/detector": {"get": {"summary": "The detector card", "security": secured,
                                     "responses": {"200": {"description": "detector.json essentials, "
                                                           "fingerprints, metrics, limits"}, "401": _ERR}}},
            "/healthz": {"get": {"summary": "Alive", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Ready to score (503 while starting or draining)",
                                "responses": {"200": {"description": "ready"}, "503": _ERR}}},
            "/metrics": {"get": {"summary": "Prometheus counters (text format 0.0.4)", "security": secured,
                                 "responses": {"200": {"description": "metrics"}, "401": _ERR}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Required when the server was started with --token"}},
            "schemas": {
                "Row": _row_schema(),
                "Results": {"type": "object", "properties": {
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/Row"}},
                    "error": {"type": ["string", "null"]}}},
                "Error": {"type": "object", "properties": {
                    "error": {"type": "string"}, "status": {"type": "integer"}, "limit": {"type": ["string", "null"]},
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/Row"}}}},
            },
        },
    }
