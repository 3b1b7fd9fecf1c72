'use strict';
// Test function for `deployer serve` (tests/test_serve*.py): an async handler, routed by the first
// path segment. The Python twin is tests/apps/serve_python/main.py; both answer the same routes.

const VERSION = 'v1';
let invocations = 0; // module state: kept between requests by a warm worker

function reply(data, status = 200) {
  return { statusCode: status, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data) };
}

function canRequire(name) {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

exports.handler = async (event, context) => {
  invocations += 1;
  const route = event.path.replace(/^\/+|\/+$/g, '').split('/');
  switch (route[0]) {
    case 'reply': // answer exactly what the request body says
      return JSON.parse(event.body);
    case 'count':
      return reply({ count: invocations });
    case 'version':
      return reply({ version: VERSION });
    case 'pid':
      return reply({ pid: process.pid });
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, Number(route[1]) * 1000));
      return reply({ slept: Number(route[1]) });
    case 'crash':
      process.exit(1);
      break;
    case 'raise':
      throw new TypeError('boom from the function');
    case 'reject':
      return Promise.reject(new Error('rejected by the function'));
    case 'unhandled':
      Promise.reject(new Error('nobody waits for this'));
      await new Promise((resolve) => setTimeout(resolve, 200));
      return reply({ unreachable: true });
    case 'print':
      console.log('hello from the function');
      return reply({ printed: true });
    case 'context':
      return reply({
        functionName: context.functionName,
        functionVersion: context.functionVersion,
        memoryLimitInMB: context.memoryLimitInMB,
        awsRequestId: context.awsRequestId,
        invokedFunctionArn: context.invokedFunctionArn,
        logGroupName: context.logGroupName,
        remainingTimeInMillis: context.getRemainingTimeInMillis(),
        callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
      });
    case 'env':
      return reply({ env: process.env, cwd: process.cwd() });
    case 'imports':
      return reply({ helperlib: canRequire('helperlib') });
    default:
      return reply({ event });
  }
};
