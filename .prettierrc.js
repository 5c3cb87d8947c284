'use strict';

module.exports = {
  plugins: ['prettier-plugin-ember-template-tag'],
  overrides: [
    {
      // Markdown too, so code blocks in the README keep the style of the files they are copied from.
      files: '*.{js,gjs,ts,gts,mjs,mts,cjs,cts,md}',
      options: {
        singleQuote: true,
        templateSingleQuote: false,
      },
    },
  ],
};
