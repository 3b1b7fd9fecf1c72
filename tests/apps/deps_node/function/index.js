const isNumber = require("is-number");

exports.handler = async (event) => ({
  statusCode: 200,
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ isNumber: isNumber(event.queryStringParameters?.n ?? "") }),
});
