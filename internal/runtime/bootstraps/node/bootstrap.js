// Wisp's Node.js bootstrap: an AWS Lambda Runtime API (2018-06-01) client
// that loads the handler named by _HANDLER from LAMBDA_TASK_ROOT and serves
// invocations one at a time, the way AWS's Node.js runtime interface client
// (aws-lambda-nodejs-runtime-interface-client 3.x, the nodejs18.x–22.x
// runtimes) does, so unmodified Lambda handlers run here.
//
// Written out as bootstrap.cjs, so it stays CommonJS under any package.json.
//
// As on AWS, a handler that is not async, returns no promise and never calls
// back answers null once the event loop empties: its return value is
// ignored. (AWS's nodejs24.x returns it instead, but drops callbacks.)
//
// Standard library only. Where this differs from AWS it says so below:
//   - A callback handler that leaves context.callbackWaitsForEmptyEventLoop
//     true gets its response posted when the event loop empties, as on AWS,
//     but at the latest EMPTY_LOOP_GRACE_MS after the callback (and never
//     after the deadline): AWS would hang until the timeout when something
//     (a database pool, an interval) keeps the loop alive forever.
//   - Error bodies carry "stackTrace" (the Runtime API's documented field);
//     AWS's Node client names it "trace".
//   - Response streaming (awslambda.streamifyResponse), the JSON log format
//     and the telemetry log fd are not supported.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const url = require('url');
const util = require('util');

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';

// How long a callback handler's response may wait for the event loop to
// empty; see the header comment.
const EMPTY_LOOP_GRACE_MS = 1000;

// Exit codes of AWS's client for an uncaught exception and an unhandled
// rejection.
const EXIT_UNCAUGHT = 129;
const EXIT_UNHANDLED_REJECTION = 128;

// ---------------------------------------------------------------------------
// Errors

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class NodeJsExit extends Error {
  constructor() {
    super(
      'The Lambda runtime client detected an unexpected Node.js exit code. ' +
        'This is most commonly caused by a Promise that was never settled.',
    );
  }
}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
for (const e of [
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  NodeJsExit,
  UnhandledPromiseRejection,
]) {
  e.prototype.name = `Runtime.${e.name}`;
}

function isErrorLike(obj) {
  return (
    obj &&
    typeof obj.name === 'string' &&
    typeof obj.message === 'string' &&
    typeof obj.stack === 'string' &&
    obj.name !== '' &&
    obj.message !== '' &&
    obj.stack !== ''
  );
}

// toErrorBody is the body of an /error post: what AWS's client reports for
// err, with the trace under the Runtime API's "stackTrace".
function toErrorBody(err) {
  try {
    if (util.types.isNativeError(err) || isErrorLike(err)) {
      return {
        errorType: err.name,
        errorMessage: err.message,
        stackTrace: typeof err.stack === 'string' ? err.stack.split('\n') : [],
      };
    }
    return {
      errorType: typeof err,
      errorMessage: String(err),
      stackTrace: [],
    };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
      stackTrace: [],
    };
  }
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

// formatError renders err for a log line as AWS does: a tab, then JSON with
// the error's name, message, enumerable properties and stack lines.
function formatError(err) {
  const withProperties = (_key, value) => {
    if (!(value instanceof Error)) {
      return value;
    }
    const out = Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code },
      value,
    );
    if (typeof value.stack === 'string') {
      out.stack = value.stack.split('\n');
    }
    return out;
  };
  try {
    return '\t' + JSON.stringify(err, withProperties);
  } catch (_) {
    return '\t' + JSON.stringify(toErrorBody(err));
  }
}

// ---------------------------------------------------------------------------
// Logging: console.* write "<ISO time>\t<request id>\t<LEVEL>\t<message>"
// lines to stdout, newlines inside a message turned into \r so one call is
// one line. The request id is "undefined" until the first invocation, as on
// AWS.

let currentRequestId;

function patchConsole() {
  const levels = {
    TRACE: 1,
    DEBUG: 2,
    INFO: 3,
    WARN: 4,
    ERROR: 5,
    FATAL: 6,
  };
  const minLevel =
    levels[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] ||
    levels.TRACE;
  const logger = (level) => {
    if (levels[level] < minLevel) {
      return () => {};
    }
    return (message, ...params) => {
      const line = `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${util.format(message, ...params)}`;
      process.stdout.write(line.replace(/\n/g, '\r') + '\n');
    };
  };
  console.trace = logger('TRACE');
  console.debug = logger('DEBUG');
  console.info = logger('INFO');
  console.log = console.info;
  console.warn = logger('WARN');
  console.error = logger('ERROR');
  console.fatal = logger('FATAL');
}

function logError(message, err) {
  console.error(message, formatError(intoError(err)));
}

// ---------------------------------------------------------------------------
// Runtime API client, over one keep-alive connection.

class RuntimeClient {
  constructor(hostPort) {
    const i = hostPort.lastIndexOf(':');
    if (i < 0) {
      throw new Error(`bad AWS_LAMBDA_RUNTIME_API ${JSON.stringify(hostPort)}`);
    }
    this.hostname = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    this.port = parseInt(hostPort.slice(i + 1), 10);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  // request resolves to {status, headers, body}. A request that fails on a
  // reused keep-alive socket the server has just closed is sent once more.
  request(method, path, body, headers) {
    return new Promise((resolve, reject) => {
      const attempt = (retried) => {
        const req = http.request(
          {
            hostname: this.hostname,
            port: this.port,
            method,
            path,
            headers,
            agent: this.agent,
          },
          (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () =>
              resolve({
                status: res.statusCode,
                headers: res.headers,
                body: Buffer.concat(chunks).toString('utf8'),
              }),
            );
          },
        );
        req.on('error', (err) => {
          if (!retried && req.reusedSocket && err.code === 'ECONNRESET') {
            attempt(true);
            return;
          }
          reject(err);
        });
        req.end(body);
      };
      attempt(false);
    });
  }

  async next() {
    const res = await this.request('GET', `${API_PREFIX}/invocation/next`);
    if (res.status !== 200) {
      throw new Error(
        `runtime API: next invocation: status ${res.status}: ${res.body}`,
      );
    }
    return res;
  }

  // post sends a JSON body and calls done when the Runtime API has
  // answered. A Runtime API that cannot be reached ends the process: it is
  // the only way to the caller.
  post(path, bodyString, headers, done) {
    const h = Object.assign(
      {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(bodyString),
      },
      headers,
    );
    this.request('POST', path, bodyString, h).then(
      (res) => {
        if (res.status < 200 || res.status > 299) {
          process.stderr.write(
            `wisp bootstrap: POST ${path}: status ${res.status}: ${res.body}\n`,
          );
        }
        done();
      },
      (err) => {
        process.stderr.write(`wisp bootstrap: POST ${path}: ${err}\n`);
        process.exit(1);
      },
    );
  }

  // postInvocationResponse throws, before sending anything, when result
  // cannot be serialized, so the caller can report that instead.
  postInvocationResponse(result, id, done) {
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch (_) {
      throw new Error('Unable to stringify response body');
    }
    // JSON.stringify answers undefined for a function or a symbol.
    if (body === undefined) {
      body = 'null';
    }
    this.post(
      `${API_PREFIX}/invocation/${encodeURIComponent(id)}/response`,
      body,
      {},
      done,
    );
  }

  postInvocationError(err, id, done) {
    const body = toErrorBody(err);
    this.post(
      `${API_PREFIX}/invocation/${encodeURIComponent(id)}/error`,
      JSON.stringify(body),
      { [ERROR_TYPE_HEADER]: body.errorType },
      done,
    );
  }

  postInitError(err, done) {
    const body = toErrorBody(err);
    this.post(
      `${API_PREFIX}/init/error`,
      JSON.stringify(body),
      { [ERROR_TYPE_HEADER]: body.errorType },
      done,
    );
  }
}

// ---------------------------------------------------------------------------
// Handler loading, as AWS's UserFunction.js: "dir/module.export.path", the
// module resolved in appRoot by trying the bare name, .js, .mjs and .cjs.

function hasTypeModule(folder) {
  for (;;) {
    if (folder.endsWith('/node_modules')) {
      return false;
    }
    const pj = path.join(folder, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(pj, 'utf8'));
        if (pkg) {
          return pkg.type === 'module';
        }
      } catch (err) {
        console.warn(
          `${pj} cannot be read, it will be ignored for ES module detection purposes.`,
          err,
        );
        return false;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder) {
      return false;
    }
    folder = parent;
  }
}

function tryRequire(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function tryImport(file) {
  return fs.existsSync(file) ? import(url.pathToFileURL(file).href) : undefined;
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const loaded = tryRequire(base);
  if (loaded) {
    return loaded;
  }
  const isModule = hasTypeModule(path.dirname(base));
  const found =
    (!isModule && tryRequire(base + '.js')) ||
    (isModule && (await tryImport(base + '.js'))) ||
    (await tryImport(base + '.mjs')) ||
    tryRequire(base + '.cjs');
  if (found) {
    return found;
  }
  // A directory with an index file or a package under node_modules.
  return require(
    require.resolve(moduleName, {
      paths: [appRoot, path.resolve(appRoot, moduleRoot)],
    }),
  );
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const handlerBase = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerBase));
  const match = handlerBase.match(/^([^.]*)\.(.*)$/);
  if (!match) {
    throw new MalformedHandlerName('Bad handler');
  }
  const [, moduleName, exportPath] = match;

  let mod;
  try {
    mod = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new UserCodeSyntaxError(err);
    }
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new ImportModuleError(err);
    }
    throw err;
  }

  const fn = exportPath
    .split('.')
    .reduce((obj, key) => obj && obj[key], mod);
  if (!fn) {
    throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  }
  if (typeof fn !== 'function') {
    throw new HandlerNotFound(`${fullHandler} is not a function`);
  }
  return fn;
}

function isAsyncFunction(fn) {
  try {
    return fn.constructor && fn.constructor.name === 'AsyncFunction';
  } catch (_) {
    return false;
  }
}

function isPromise(obj) {
  return obj && typeof obj.then === 'function';
}

// ---------------------------------------------------------------------------
// The invoke loop.

class Runtime {
  constructor(client, handler) {
    this.client = client;
    this.handler = handler;
    this.isAsync = isAsyncFunction(handler);
    // beforeExit runs when the event loop has nothing left to do: the end of
    // a handler that neither returned a promise nor called back, or the wait
    // of a callback for an empty loop.
    this.beforeExit = () => {};
    // What an uncaught exception or unhandled rejection does: an init error
    // until the first invocation, then an error for the current one.
    this.onUncaught = (err) =>
      client.postInitError(err, () => process.exit(EXIT_UNCAUGHT));
    this.onUnhandledRejection = (err) =>
      client.postInitError(err, () => process.exit(EXIT_UNHANDLED_REJECTION));
  }

  scheduleIteration() {
    setImmediate(() => {
      this.handleOnce().catch((err) => {
        console.log(`Unexpected Top Level Error: ${err}`);
        this.onUncaught(err);
      });
    });
  }

  async handleOnce() {
    const { headers, body } = await this.client.next();
    const id = headers['lambda-runtime-aws-request-id'];
    if (!id) {
      throw new Error('invocation id is missing or invalid');
    }
    currentRequestId = id;
    const trace = headers['lambda-runtime-trace-id'];
    if (trace) {
      process.env._X_AMZN_TRACE_ID = trace;
    } else {
      delete process.env._X_AMZN_TRACE_ID;
    }
    const deadline = Number(headers['lambda-runtime-deadline-ms']);

    const { callback, context, markCompleted } = this.callbackContext(
      id,
      deadline,
    );
    try {
      this.onUncaught = (err) =>
        this.client.postInvocationError(err, id, () =>
          process.exit(EXIT_UNCAUGHT),
        );
      this.onUnhandledRejection = (err) =>
        this.client.postInvocationError(err, id, () =>
          process.exit(EXIT_UNHANDLED_REJECTION),
        );
      this.beforeExit = () => {
        markCompleted();
        if (this.isAsync) {
          const err = new NodeJsExit();
          logError('Invoke Error', err);
          this.client.postInvocationError(err, id, () =>
            this.scheduleIteration(),
          );
        } else {
          // AWS's Node.js runtimes answer null for a handler that returned
          // without a promise and never called back.
          this.client.postInvocationResponse(null, id, () =>
            this.scheduleIteration(),
          );
        }
      };

      Object.assign(context, {
        functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
        functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
        memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
        logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        clientContext: parseJSONHeader(
          headers['lambda-runtime-client-context'],
          'ClientContext',
        ),
        identity: parseJSONHeader(
          headers['lambda-runtime-cognito-identity'],
          'CognitoIdentity',
        ),
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        awsRequestId: id,
        getRemainingTimeInMillis: () => deadline - Date.now(),
      });

      const result = this.handler(JSON.parse(body), context, callback);
      if (isPromise(result)) {
        result.then(context.succeed, context.fail).catch(context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  // callbackContext builds the handler's callback and the part of the
  // context that finishes an invocation (done, succeed, fail,
  // callbackWaitsForEmptyEventLoop). Only the first of them to be called
  // counts.
  callbackContext(id, deadline) {
    const next = () => this.scheduleIteration();
    let waitForEmptyEventLoop = true;
    let completed = false;

    const complete = (result) => {
      if (completed) {
        console.error(
          'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
        );
        return;
      }
      completed = true;
      this.client.postInvocationResponse(result, id, next);
    };
    const postError = (err) => {
      logError('Invoke Error', err);
      this.client.postInvocationError(err, id, next);
    };

    const callback = (err, result) => {
      this.beforeExit = () => {};
      if (err !== undefined && err !== null) {
        postError(err);
        return;
      }
      if (!waitForEmptyEventLoop) {
        complete(result);
        return;
      }
      // Answer when the event loop empties, or after the grace period: the
      // timer is unref'd so it does not itself keep the loop busy.
      let answered = false;
      const answer = () => {
        if (answered) {
          return;
        }
        answered = true;
        clearTimeout(timer);
        this.beforeExit = () => {};
        complete(result);
      };
      const grace = Math.max(
        0,
        Math.min(EMPTY_LOOP_GRACE_MS, deadline - Date.now() - 50),
      );
      const timer = setTimeout(answer, Number.isFinite(grace) ? grace : EMPTY_LOOP_GRACE_MS);
      timer.unref();
      this.beforeExit = () => setImmediate(answer);
    };

    const done = (err, result) => {
      this.beforeExit = () => {};
      if (err !== undefined && err !== null) {
        postError(err);
      } else {
        complete(result);
      }
    };

    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
      succeed: (result) => done(null, result),
      fail: (err) => (err === undefined || err === null ? done('handled') : done(err, null)),
      done,
    };

    let finished = false;
    const once = (fn) =>
      function () {
        if (!finished) {
          fn.apply(null, arguments);
          finished = true;
        }
      };
    context.succeed = once(context.succeed);
    context.fail = once(context.fail);
    context.done = once(context.done);
    return {
      callback: once(callback),
      context,
      markCompleted: () => {
        completed = true;
      },
    };
  }
}

function parseJSONHeader(value, name) {
  if (value === undefined || value === '') {
    return undefined;
  }
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err}`);
  }
}

async function main() {
  patchConsole();
  const client = new RuntimeClient(process.env.AWS_LAMBDA_RUNTIME_API || '');
  let runtime;
  const atInit = {
    onUncaught: (err) => client.postInitError(err, () => process.exit(EXIT_UNCAUGHT)),
    onUnhandledRejection: (err) =>
      client.postInitError(err, () => process.exit(EXIT_UNHANDLED_REJECTION)),
  };
  process.on('uncaughtException', (err) => {
    logError('Uncaught Exception', err);
    (runtime || atInit).onUncaught(err);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const err = new UnhandledPromiseRejection(reason, promise);
    logError('Unhandled Promise Rejection', err);
    (runtime || atInit).onUnhandledRejection(err);
  });
  process.on('beforeExit', () => {
    if (runtime) {
      runtime.beforeExit();
    }
  });

  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  let handler;
  try {
    handler = await loadHandler(appRoot, process.env._HANDLER || '');
  } catch (err) {
    // AWS reports a failed load as an uncaught exception at init.
    logError('Uncaught Exception', err);
    client.postInitError(err, () => process.exit(EXIT_UNCAUGHT));
    return;
  }
  runtime = new Runtime(client, handler);
  runtime.scheduleIteration();
}

main();
