'use strict';
// A real framework app behind API Gateway's proxy integration: Express, adapted by serverless-http
// (tests/test_gateway_fidelity.py serves it with `deployer serve`).

const express = require('express');
const serverless = require('serverless-http');

const PIXEL = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
const app = express();
app.use(express.json());

app.get('/', (req, res) => res.type('html').send('<h1>Hello from Express</h1>'));
app.get('/pixel.png', (req, res) => res.type('png').send(PIXEL));
app.post('/echo', (req, res) => res.json({ echo: req.body }));
app.get('/search', (req, res) => res.json({ q: req.query.q, page: req.query.page }));
app.get('/items/:itemId', (req, res) => res.set('X-Item-Source', 'express').json({ itemId: req.params.itemId }));

exports.handler = serverless(app, { binary: ['image/*'] });
