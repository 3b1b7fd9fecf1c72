'use strict';
// A callback-style handler (event, context, callback), as the nodejs22.x runtime still accepts.

exports.handler = function (event, context, callback) {
  if (event.path === '/raise') {
    callback(new Error('boom from the callback'));
    return;
  }
  if (event.path === '/throw') {
    throw new RangeError('thrown before the callback');
  }
  setTimeout(() => {
    callback(null, {
      statusCode: 201,
      headers: { 'Content-Type': 'text/plain' },
      body: `callback style for ${context.functionName}`,
    });
  }, 10);
};
