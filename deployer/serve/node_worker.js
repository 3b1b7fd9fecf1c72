'use strict';
// The child process that runs a Node.js Lambda handler for `deployer serve` (protocol: see runner.py).
//
// Started as `node node_worker.js IN_FD OUT_FD` in the function's folder with Lambda's environment
// variables. It loads the handler once (the cold start), says "ready", then answers one JSON request
// line from IN_FD at a time with one JSON line on OUT_FD. console.log and friends write to the
// process's stdout and stderr, which are the server's console.
//
// Handlers: `async (event, context)` or any function returning a promise; on nodejs22.x also
// `(event, context, callback)`. Like Lambda's nodejs24.x runtime, a handler declaring a third
// (callback) parameter is refused there with Runtime.CallbackHandlerDeprecated.

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');
const { pathToFileURL } = require('node:url');

const inFd = Number(process.argv[2]);
const outFd = Number(process.argv[3]);
const runtime = (process.env.AWS_EXECUTION_ENV || '').replace(/^AWS_Lambda_/, '');
const callbacksRemoved = !/^nodejs(1\d|2[0-3])\.x$/.test(runtime);
let current = null; // the request being handled, if any

function send(message) {
  const data = Buffer.from(JSON.stringify(message) + '\n', 'utf8');
  let offset = 0;
  while (offset < data.length) {
    offset += fs.writeSync(outFd, data, offset, data.length - offset);
  }
}

function runtimeError(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

function describe(error, type) {
  if (error instanceof Error) {
    const stack = typeof error.stack === 'string' ? error.stack.split('\n').slice(1).map((line) => line.trim()) : [];
    return { errorType: type || error.name || 'Error', errorMessage: String(error.message), stackTrace: stack };
  }
  return { errorType: type || typeof error, errorMessage: String(error), stackTrace: [] };
}

async function loadHandler() {
  const spec = process.env._HANDLER || '';
  const dot = spec.lastIndexOf('.');
  const moduleName = spec.slice(0, dot);
  const functionName = spec.slice(dot + 1);
  const base = path.resolve(process.env.LAMBDA_TASK_ROOT || '.', moduleName);
  const file = ['.js', '.mjs', '.cjs'].map((extension) => base + extension).find((name) => fs.existsSync(name));
  if (!file) {
    throw runtimeError('Runtime.ImportModuleError', `Error: Cannot find module '${moduleName}'`);
  }
  let loaded;
  try {
    if (file.endsWith('.mjs')) {
      loaded = await import(pathToFileURL(file).href);
    } else {
      try {
        loaded = require(file);
      } catch (error) {
        if (error && error.code === 'ERR_REQUIRE_ESM') {
          loaded = await import(pathToFileURL(file).href);
        } else {
          throw error;
        }
      }
    }
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw runtimeError('Runtime.UserCodeSyntaxError', `${error.name}: ${error.message}`);
    }
    if (error && error.code === 'MODULE_NOT_FOUND') {
      throw runtimeError('Runtime.ImportModuleError', `Error: ${error.message.split('\n')[0]}`);
    }
    throw error;
  }
  const handler = loaded ? loaded[functionName] : undefined;
  if (typeof handler !== 'function') {
    throw runtimeError('Runtime.HandlerNotFound', `${moduleName}.${functionName} is undefined or not exported`);
  }
  if (handler.length >= 3 && callbacksRemoved) {
    throw runtimeError(
      'Runtime.CallbackHandlerDeprecated',
      `${runtime} does not support callback-based handlers (this one declares 3 parameters): ` +
        'make it async (event, context) and return the response, or use nodejs22.x',
    );
  }
  return handler;
}

function makeContext(request, finish) {
  return {
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    awsRequestId: request.requestId,
    invokedFunctionArn: request.invokedFunctionArn,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, request.deadlineMs - Date.now()),
    succeed: (result) => finish.succeed(result),
    fail: (error) => finish.fail(error),
    done: (error, result) => (error === null || error === undefined ? finish.succeed(result) : finish.fail(error)),
  };
}

function invoke(handler, request) {
  return new Promise((resolve) => {
    let finished = false;
    const finish = {
      succeed(result) {
        if (!finished) {
          finished = true;
          resolve({ type: 'result', result: result === undefined ? null : result });
        }
      },
      fail(error) {
        if (!finished) {
          finished = true;
          resolve({ type: 'error', error: describe(error) });
        }
      },
    };
    const callback = (error, result) =>
      error === null || error === undefined ? finish.succeed(result) : finish.fail(error);
    let returned;
    try {
      returned = handler(request.event, makeContext(request, finish), callback);
    } catch (error) {
      finish.fail(error);
      return;
    }
    if (returned && typeof returned.then === 'function') {
      returned.then(
        (result) => finish.succeed(result),
        (error) => finish.fail(error === undefined || error === null ? new Error(`rejected with ${error}`) : error),
      );
    } else if (handler.length < 3) {
      // Neither async nor taking the callback: Lambda ignores the return value and answers null.
      finish.succeed(null);
    }
  });
}

function answer(message) {
  try {
    send(message);
  } catch (error) {
    send({ type: 'error', error: describe(error, 'Runtime.JSONStringifyError') });
  }
}

function crash(type) {
  return (error) => {
    console.error(error);
    if (current !== null) {
      current = null;
      answer({ type: 'error', error: describe(error, type), fatal: true });
    }
    process.exit(1);
  };
}

async function main() {
  let handler;
  try {
    handler = await loadHandler();
  } catch (error) {
    send({ type: 'error', error: describe(error) });
    process.exit(1);
  }
  process.on('uncaughtException', crash(undefined));
  process.on('unhandledRejection', crash('Runtime.UnhandledPromiseRejection'));
  send({ type: 'ready' });
  const input = new net.Socket({ fd: inFd, readable: true, writable: false });
  for await (const line of readline.createInterface({ input, crlfDelay: Infinity })) {
    current = JSON.parse(line);
    const message = await invoke(handler, current);
    if (current !== null) {
      current = null;
      answer(message);
    }
  }
  process.exit(0);
}

main();
