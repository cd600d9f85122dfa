// Parses and validates an AsyncAPI document with the AsyncAPI Initiative's own parser
// (@asyncapi/parser, pinned in package-lock.json), then checks every message's examples against
// its payload and headers schemas with Ajv (the parser's own JSON Schema validator; the parser's
// ruleset checks examples for AsyncAPI 2 only): prints every diagnostic and mismatch and what the
// document holds; exits 1 on any error.
//
//   node validate.mjs DOCUMENT(.json|.yaml)

import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const source = readFileSync(process.argv[2], 'utf8');
const { document, diagnostics } = await new Parser().parse(source);
const names = { [DiagnosticSeverity.Error]: 'error', [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info', [DiagnosticSeverity.Hint]: 'hint' };
for (const d of diagnostics) {
  console.log(`${names[d.severity]} ${d.code} at ${d.path.join('/')}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
if (!document || errors.length > 0) {
  console.log(`invalid: ${errors.length} errors`);
  process.exit(1);
}
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
// The integer and float widths schemars writes: annotations, as JSON Schema says of unknown formats.
for (const width of ['uint', 'uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16']) {
  ajv.addFormat(width, true);
}
let checked = 0;
const mismatches = [];
for (const message of document.allMessages()) {
  for (const example of message.examples().all()) {
    for (const [part, schema, value] of [['payload', message.payload(), example.payload()],
      ['headers', message.headers(), example.headers()]]) {
      if (schema === undefined || value === undefined) continue;
      const validate = ajv.compile(schema.json());
      checked += 1;
      if (!validate(value)) {
        mismatches.push(`${message.id()} ${part}: ${ajv.errorsText(validate.errors)}`);
      }
    }
  }
}
for (const mismatch of mismatches) console.log(`example off its schema: ${mismatch}`);
if (mismatches.length > 0) process.exit(1);
console.log(`${checked} examples checked against their schemas`);
console.log(`valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ` +
  `${document.operations().length} operations, ${document.components().messages().length} messages, ` +
  `${diagnostics.length - errors.length} warnings and hints`);
