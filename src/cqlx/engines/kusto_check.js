#!/usr/bin/env node
// Check KQL queries with Microsoft's Kusto.Language parser and semantic analyser.
//
// Usage: node kusto_check.js PACKAGE_DIR < request.json > response.json
//
// PACKAGE_DIR is the directory of the npm package @kusto/language-service-next
// (the one holding bridge.js and Kusto.Language.Bridge.js).
//
// Request (one JSON document on stdin):
//   {"tables": {"Name": [["Col", "type"], ...], ...}, "queries": ["...", ...]}
// Response (one JSON document on stdout):
//   {"results": [[{"severity", "code", "start", "length", "message"}, ...], ...]}
// with one list of diagnostics per query, in order. With "literals": true in the
// request, also "literals": [["value", ...], ...]: the value of every string
// literal token of each query (bracketed names ['...'] included), as Kusto reads it. Offsets count Unicode code
// points (as Python's str does), not the UTF-16 units JavaScript uses.
//
// A problem with the request itself (bad JSON, an unknown column type) is
// written to stderr and the process exits with status 2; a package that cannot
// be loaded exits with status 3.
"use strict";

const fs = require("fs");
const path = require("path");

function fail(status, message) {
  process.stderr.write(`kusto_check: ${message}\n`);
  process.exitCode = status;
}

function loadKusto(packageDir) {
  // bridge.js defines the global `Bridge` runtime; Kusto.Language.Bridge.js
  // defines the global `Kusto` namespace on top of it. Both are plain scripts
  // that assign globals, so the order matters.
  require(path.join(packageDir, "bridge.js"));
  require(path.join(packageDir, "Kusto.Language.Bridge.js"));
  if (typeof globalThis.Bridge !== "object" || typeof globalThis.Kusto !== "object") {
    throw new Error(`${packageDir} did not define the globals Bridge and Kusto`);
  }
  return globalThis.Kusto.Language;
}

function toArray(enumerable) {
  const items = [];
  const en = globalThis.Bridge.getEnumerator(enumerable);
  while (en.moveNext()) {
    items.push(en.Current);
  }
  return items;
}

// A column name in a schema string, always bracket-quoted so that names such
// as "@timestamp", "event.action" or "my col" survive.
function quoteName(name) {
  return "['" + name.replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "']";
}

function buildTable(K, name, columns) {
  if (!Array.isArray(columns)) {
    throw new Error(`table ${name}: columns must be a list of [name, type] pairs`);
  }
  const parts = columns.map((col, i) => {
    if (!Array.isArray(col) || col.length !== 2 || typeof col[0] !== "string" || typeof col[1] !== "string") {
      throw new Error(`table ${name}: column ${i} must be a [name, type] pair of strings`);
    }
    if (!/^[A-Za-z]+$/.test(col[1])) {
      throw new Error(`table ${name}: column ${col[0]} has an invalid type ${JSON.stringify(col[1])}`);
    }
    return `${quoteName(col[0])}:${col[1]}`;
  });
  const table = new K.Symbols.TableSymbol.$ctor7(name, `(${parts.join(", ")})`, null);
  const built = toArray(table.Columns);
  if (built.length !== columns.length) {
    throw new Error(`table ${name}: schema parsed to ${built.length} columns, expected ${columns.length}`);
  }
  built.forEach((col, i) => {
    if (col.Name !== columns[i][0]) {
      throw new Error(`table ${name}: column ${JSON.stringify(columns[i][0])} parsed as ${JSON.stringify(col.Name)}`);
    }
    if (col.Type.Name === "unknown") {
      throw new Error(`table ${name}: column ${columns[i][0]} has an unknown type ${JSON.stringify(columns[i][1])}`);
    }
  });
  return table;
}

// Convert a UTF-16 offset into `text` to a code point offset.
function codePoints(text, utf16Offset) {
  let count = 0;
  for (let i = 0; i < utf16Offset && i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
      }
    }
    count++;
  }
  return count;
}

function analyseOne(K, globals, query) {
  try {
    const code = K.KustoCode.ParseAndAnalyze(query, globals);
    return toArray(code.GetDiagnostics()).map((d) => {
      const start = codePoints(query, d.Start);
      const end = codePoints(query, d.Start + d.Length);
      return {
        severity: String(d.Severity),
        code: String(d.Code),
        start: start,
        length: end - start,
        message: String(d.Message),
      };
    });
  } catch (e) {
    return [{ severity: "Error", code: "CQLX-EXCEPTION", start: 0, length: 0,
              message: `Kusto.Language raised: ${e && e.message ? e.message : String(e)}` }];
  }
}

function stringLiterals(K, query) {
  const values = [];
  const code = K.KustoCode.Parse(query);
  let token = code.Syntax.GetFirstToken(false, false);
  while (token) {
    if (token.Kind === K.Syntax.SyntaxKind.StringLiteralToken) {
      values.push(String(K.KustoFacts.GetStringLiteralValue(token.Text)));
    }
    token = token.GetNextToken(false, false);
  }
  return values;
}

function main() {
  const packageDir = process.argv[2];
  if (!packageDir) {
    fail(2, "usage: node kusto_check.js PACKAGE_DIR < request.json");
    return;
  }
  let request;
  try {
    request = JSON.parse(fs.readFileSync(0, "utf8"));
  } catch (e) {
    fail(2, `cannot read the request from stdin: ${e.message}`);
    return;
  }
  const tables = request.tables || {};
  const queries = request.queries || [];
  if (typeof tables !== "object" || Array.isArray(tables) || !Array.isArray(queries)) {
    fail(2, 'the request must look like {"tables": {...}, "queries": [...]}');
    return;
  }

  let K;
  try {
    K = loadKusto(packageDir);
  } catch (e) {
    fail(3, `cannot load Kusto.Language from ${packageDir}: ${e.message}`);
    return;
  }

  let globals;
  try {
    const symbols = Object.keys(tables).map((name) => buildTable(K, name, tables[name]));
    const database = new K.Symbols.DatabaseSymbol.ctor("db", symbols);
    globals = K.GlobalState.Default.WithDatabase(database);
  } catch (e) {
    fail(2, e.message);
    return;
  }

  const results = queries.map((q) => (typeof q === "string"
    ? analyseOne(K, globals, q)
    : [{ severity: "Error", code: "CQLX-REQUEST", start: 0, length: 0, message: "the query is not a string" }]));
  const response = { results: results };
  if (request.literals === true) {
    response.literals = queries.map((q) => (typeof q === "string" ? stringLiterals(K, q) : []));
  }
  process.stdout.write(JSON.stringify(response) + "\n");
}

main();
