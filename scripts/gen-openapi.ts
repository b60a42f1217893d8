// Writes openapi/openapi.json from the routes' zod schemas. A test fails when the checked-in file differs.
import { writeFileSync } from 'node:fs';
import { generateOpenApi } from '../src/openapi.js';

const spec = await generateOpenApi();
writeFileSync(new URL('../openapi/openapi.json', import.meta.url), JSON.stringify(spec, null, 2) + '\n');
console.log('wrote openapi/openapi.json');
