import '@glint/ember-tsc/types';
