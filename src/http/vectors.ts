/**
 * `POST /vectors/search`: parsing and shaping only; the vector service
 * (src/vectors/) does the work.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Services } from '../services.js';
import { route } from './route.js';
import { callerOf } from './server.js';
import { TokenSchema } from './tables.js';

const FilterSchema = z
  .record(z.string(), z.unknown())
  .describe(
    'Structured, never SQL text. `{col: value}` (equal; null: IS NULL), `{col: {in: [..]}}`, `{col: {gt|gte|lt|lte|ne: v}}` (ne null: IS NOT NULL), `{and: [filter, ..]}`, `{or: [filter, ..]}`; several keys in one object all apply. Columns of type bool, int32, int64, float32, float64, string or timestamp; values are checked against the column type. Applied before top-k.',
  )
  .meta({ id: 'VectorFilter' });

export const VectorSearchBody = z
  .strictObject({
    table: z.string(),
    column: z.string().optional().describe('The vector<D> column; optional when the table has exactly one.'),
    vector: z.array(z.number()).min(1).max(65_536).describe('The query vector: D numbers.'),
    k: z.number().int().min(1).max(1000).default(10).describe('How many nearest rows: 1 to 1000, default 10.'),
    filter: FilterSchema.optional(),
    metric: z.enum(['cosine', 'l2', 'dot']).optional().describe("Default: the column's metric. Another metric is answered by exact search."),
    asOf: z.union([z.string(), z.number()]).optional().describe('RFC 3339 or epoch ms: search the table as the store knew it then (rows committed by that time).'),
    features: z.array(z.string()).optional().describe("`view:feature` references: each hit's online features, as `GET /features/{key}` answers them. Checked before the search: 404 an unknown view or feature, 400 a view whose entity column cannot hold this table's keys."),
  })
  .meta({ id: 'VectorSearch' });

const EntityFeatures = z.object({
  entity: z.unknown(),
  features: z.record(z.string(), z.unknown()),
  statuses: z.record(z.string(), z.string()),
  eventTimes: z.record(z.string(), z.string().nullable()),
  token: TokenSchema,
});

export const VectorSearchAnswerSchema = z
  .object({
    results: z.array(
      z.object({
        key: z.string().nullable().describe("The row's canonical key (pk tables, and log tables with key columns); else its offset (no entity: it gets no features). null for a log row whose key is null: it has no key and no entity, and gets no features."),
        offset: z.number().int().describe('The changelog offset that wrote this version of the row.'),
        distance: z.number().describe('cosine: 1 - cos; l2: squared Euclidean; dot: -(a.b). Smaller is nearer.'),
        row: z.record(z.string(), z.unknown()),
        features: EntityFeatures.optional(),
      }),
    ),
    token: TokenSchema,
    search: z
      .object({
        index: z.enum(['ann', 'exact']),
        reason: z.string().optional(),
        asOfSource: z.enum(['lance', 'changelog']).optional().describe('asOf: a Lance version plus the changelog up to the time, or (no Lance version kept is that old, or the asOf is before the table\'s first write) an exact scan of the changelog; `reason` says which.'),
        lanceVersion: z.number().int().optional(),
        metric: z.enum(['cosine', 'l2', 'dot']),
        column: z.string(),
      })
      .describe('How the answer was found.'),
  })
  .meta({ id: 'VectorSearchAnswer' });

export function vectorRoutes(app: FastifyInstance, services: Services): void {
  route(
    app,
    {
      method: 'POST',
      url: '/vectors/search',
      operationId: 'searchVectors',
      work: 'searches',
      scope: 'read',
      summary: 'Nearest rows to a vector',
      description:
        'Every write acknowledged before the search began is visible: rows not yet in the Lance index are scored exactly and merged with its candidates; a pk table answers each key in its latest version only (an updated vector in its new version, a deleted key never). 404 unknown table; 400 unknown or non-vector column, wrong dimension, bad filter.',
      tags: ['vectors'],
      body: VectorSearchBody,
      responses: { 200: VectorSearchAnswerSchema, 400: 'error', 404: 'error', 503: 'error' },
    },
    (req, _reply, { body }) => services.vectors.search(body, callerOf(req)),
  );
}
