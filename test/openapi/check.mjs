// Checks docs/openapi.json with a real OpenAPI validator, then checks answers a live cluster
// gave against the schemas the document declares for them.
//   node check.mjs OPENAPI.json [SAMPLES.json]
// SAMPLES: [{"method":"get","path":"/v1/cluster","status":200,"content_type":"application/json","body":"..."}]
// (`path` is the document's path template). Exit 0: all good; 1: the document or a sample is wrong.
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import { readFileSync } from "node:fs";

const [docPath, samplesPath] = process.argv.slice(2);
if (!docPath) {
  console.error("usage: node check.mjs OPENAPI.json [SAMPLES.json]");
  process.exit(2);
}
const doc = JSON.parse(readFileSync(docPath, "utf8"));
const validator = new Validator();
const res = await validator.validate(doc);
if (!res.valid) {
  console.log("document: not a valid OpenAPI document");
  console.log(JSON.stringify(res.errors, null, 2));
  process.exit(1);
}
console.log(`document: valid OpenAPI ${validator.version}, ${Object.keys(doc.paths).length} paths`);
if (!samplesPath) process.exit(0);

// The document as one schema resource: response schemas are referenced by JSON pointer and
// their own "#/components/..." references resolve inside it.
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
const id = "https://shardd.invalid/openapi.json";
ajv.addSchema({ ...doc, $id: id });
const escape = (s) => s.replace(/~/g, "~0").replace(/\//g, "~1");

const samples = JSON.parse(readFileSync(samplesPath, "utf8"));
let bad = 0;
for (const s of samples) {
  const where = `${s.method.toUpperCase()} ${s.path} -> ${s.status}`;
  const op = doc.paths[s.path]?.[s.method];
  if (!op) {
    console.log(`FAIL ${where}: no such operation in the document`);
    bad++;
    continue;
  }
  const status = String(s.status);
  const response = op.responses[status] ?? op.responses.default;
  if (!response) {
    console.log(`FAIL ${where}: the document lists no ${status} answer (it lists ${Object.keys(op.responses).join(", ")})`);
    bad++;
    continue;
  }
  let resolved = response;
  let pointer = `#/paths/${escape(s.path)}/${s.method}/responses/${status}`;
  if (response.$ref) {
    pointer = response.$ref;
    resolved = pointer.slice(2).split("/").reduce((o, k) => o[k.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
  }
  const type = (s.content_type || "").split(";")[0].trim();
  if (!resolved.content?.[type]) {
    console.log(`FAIL ${where}: the document lists no ${type} content (it lists ${Object.keys(resolved.content || {}).join(", ")})`);
    bad++;
    continue;
  }
  if (!type.includes("json")) continue;
  let body;
  try {
    body = JSON.parse(s.body);
  } catch (e) {
    console.log(`FAIL ${where}: the body is not JSON`);
    bad++;
    continue;
  }
  const validate = ajv.getSchema(`${id}${pointer}/content/${escape(type)}/schema`);
  if (!validate) {
    console.log(`FAIL ${where}: cannot compile the schema at ${pointer}`);
    bad++;
    continue;
  }
  if (!validate(body)) {
    console.log(`FAIL ${where}: ${ajv.errorsText(validate.errors, { separator: "; " })}`);
    console.log(`  body: ${s.body.slice(0, 400)}`);
    bad++;
  } else {
    console.log(`ok   ${where}`);
  }
}
console.log(`samples: ${samples.length - bad} of ${samples.length} match the document`);
process.exit(bad ? 1 : 0);
