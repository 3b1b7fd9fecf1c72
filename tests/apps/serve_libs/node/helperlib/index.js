'use strict';
// A package in a folder passed as `code_dirs` (like bundled dependencies), found through NODE_PATH.
exports.greeting = 'hello from helperlib';
